/* The erofs writer's tree: entries as layers add, replace and remove them,
 * with their metadata and xattrs; erofs_layout.c writes it out. */
#include "erofs.h"
#include "erofs_int.h"
#include "le.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int erofs_fail(char *why, size_t len, int e, const char *what, const char *path)
{
	snprintf(why, len, "%s: %.300s", what, path);
	return e;
}

static struct node *node_new(const char *name, size_t nlen, const struct erofs_meta *m)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strndup(name, nlen))) {
		free(n);
		return NULL;
	}
	n->m = *m;
	return n;
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->name);
	free(n->target);
	free(n->xattrs);
	free(n);
}

static struct node *child(const struct node *d, const char *name, size_t nlen)
{
	for (size_t i = 0; i < d->nkids; i++)
		if (strlen(d->kids[i]->name) == nlen && !memcmp(d->kids[i]->name, name, nlen))
			return d->kids[i];
	return NULL;
}

static int attach(struct node *d, struct node *n)
{
	if (d->nkids == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct node **k = realloc(d->kids, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		d->kids = k;
		d->cap = cap;
	}
	n->parent = d;
	d->kids[d->nkids++] = n;
	return 0;
}

static void detach(struct node *d, struct node *n)
{
	for (size_t i = 0; i < d->nkids; i++)
		if (d->kids[i] == n) {
			d->kids[i] = d->kids[--d->nkids];
			return;
		}
}

static const struct erofs_meta default_dir = {.mode = S_IFDIR | 0755};

/*
 * The next component of the path at *@p, in @s/@l, skipping empty ones and
 * ".": returns 0 for a name, 1 for "..", -1 at the end.
 */
static int next_component(const char **p, const char **s, size_t *l)
{
	for (;;) {
		while (**p == '/')
			(*p)++;
		if (!**p)
			return -1;
		*s = *p;
		while (**p && **p != '/')
			(*p)++;
		*l = (size_t)(*p - *s);
		if (*l == 1 && (*s)[0] == '.')
			continue;
		return *l == 2 && (*s)[0] == '.' && (*s)[1] == '.';
	}
}

/*
 * Walks @path from the root, making missing directories, and returns in
 * *@parent the directory the last component goes into and in @last/@llen
 * that component (llen 0: the path is the root itself).
 */
static int walk(struct erofs_writer *w, const char *path, struct node **parent, const char **last,
                size_t *llen, char *why, size_t why_len)
{
	/* the components, with "." dropped and ".." clamped at the root */
	const char *comp[EROFS_DEPTH_MAX];
	size_t clen[EROFS_DEPTH_MAX];
	int n = 0;
	const char *p = path, *s;
	size_t l;
	for (int up; (up = next_component(&p, &s, &l)) >= 0;) {
		if (up) {
			if (n > 0)
				n--;
			continue;
		}
		if (l > EROFS_NAME_MAX)
			return erofs_fail(why, why_len, -ENAMETOOLONG,
			                  "a name longer than 255 bytes in", path);
		if (n == EROFS_DEPTH_MAX)
			return erofs_fail(why, why_len, -ELOOP, "a path deeper than 128 levels",
			                  path);
		comp[n] = s;
		clen[n++] = l;
	}
	struct node *d = w->root;
	for (int i = 0; i + 1 < n; i++) {
		struct node *c = child(d, comp[i], clen[i]);
		if (!c) {
			if (!(c = node_new(comp[i], clen[i], &default_dir)) || attach(d, c) < 0) {
				node_free(c);
				return erofs_fail(why, why_len, -ENOMEM, "out of memory at", path);
			}
		} else if (!S_ISDIR(c->m.mode)) {
			return erofs_fail(why, why_len, -ENOTDIR, "an entry under a non-directory",
			                  path);
		}
		d = c;
	}
	*parent = d;
	*last = n ? comp[n - 1] : NULL;
	*llen = n ? clen[n - 1] : 0;
	return 0;
}

/* Puts a new node for @path in place, replacing what was there (a
 * directory that stays a directory keeps its children). */
static int place(struct erofs_writer *w, const char *path, const struct erofs_meta *m,
                 struct node **out, char *why, size_t why_len)
{
	struct node *d;
	const char *last;
	size_t llen;
	int e = walk(w, path, &d, &last, &llen, why, why_len);
	if (e)
		return e;
	if (!llen) { /* the root: only its metadata can change */
		if (!S_ISDIR(m->mode))
			return erofs_fail(why, why_len, -EISDIR, "the root must be a directory",
			                  path);
		w->root->m = *m;
		*out = w->root;
		return 0;
	}
	struct node *old = child(d, last, llen);
	if (old && S_ISDIR(old->m.mode) && S_ISDIR(m->mode)) {
		old->m = *m;
		*out = old;
		return 0;
	}
	if (old) {
		detach(d, old);
		node_free(old);
	}
	struct node *n = node_new(last, llen, m);
	if (!n || attach(d, n) < 0) {
		node_free(n);
		return erofs_fail(why, why_len, -ENOMEM, "out of memory at", path);
	}
	n->layer = w->layer;
	n->link_id = ++w->next_link_id;
	*out = n;
	return 0;
}

/* The node at @path, or NULL (never made: a lookup only). */
static struct node *lookup(struct erofs_writer *w, const char *path);

/* erofs's name indexes, for the namespaces images use */
static const struct {
	const char *prefix;
	uint8_t index;
} xattr_ns[] = {{"user.", 1}, {"trusted.", 4}, {"security.", 6}};

#define XATTR_ALIGN(x) (((x) + 3u) & ~(size_t)3)

int erofs_set_xattr(struct erofs_writer *w, const char *path, const char *name, const void *value,
                    size_t len, char *why, size_t why_len)
{
	struct node *n = lookup(w, path);
	if (!n)
		return erofs_fail(why, why_len, -ENOENT, "an xattr for no entry", path);
	int idx = -1;
	size_t plen = 0;
	for (size_t i = 0; i < sizeof(xattr_ns) / sizeof(xattr_ns[0]) && idx < 0; i++) {
		plen = strlen(xattr_ns[i].prefix);
		if (!strncmp(name, xattr_ns[i].prefix, plen))
			idx = (int)i;
	}
	if (idx < 0)
		return erofs_fail(why, why_len, -EOPNOTSUPP,
		                  "an xattr outside user., trusted., security.", name);
	const char *suffix = name + plen;
	size_t sl = strlen(suffix);
	if (sl == 0 || sl > 255 || len > EROFS_XATTR_MAX)
		return erofs_fail(why, why_len, -E2BIG, "an xattr name or value too long", name);
	/* drop an earlier value of the same name */
	uint8_t *kept = malloc(n->xlen + XATTR_ALIGN(4 + sl + len));
	if (!kept)
		return erofs_fail(why, why_len, -ENOMEM, "out of memory at", path);
	size_t klen = 0;
	for (size_t off = 0; off < n->xlen;) {
		const uint8_t *e = n->xattrs + off;
		size_t esz = XATTR_ALIGN(4 + e[0] + get_le(e + 2, 2));
		if (!(e[1] == xattr_ns[idx].index && e[0] == sl && !memcmp(e + 4, suffix, sl))) {
			memcpy(kept + klen, e, esz);
			klen += esz;
		}
		off += esz;
	}
	size_t esz = XATTR_ALIGN(4 + sl + len);
	if (klen + esz > EROFS_XATTR_MAX) {
		free(kept);
		return erofs_fail(why, why_len, -E2BIG, "more than 2048 bytes of xattrs at", path);
	}
	uint8_t *e = kept + klen;
	memset(e, 0, esz);
	e[0] = (uint8_t)sl;
	e[1] = xattr_ns[idx].index;
	put_le(e + 2, len, 2);
	memcpy(e + 4, suffix, sl);
	memcpy(e + 4 + sl, value, len);
	free(n->xattrs);
	n->xattrs = kept;
	n->xlen = klen + esz;
	return 0;
}

static struct node *lookup(struct erofs_writer *w, const char *path)
{
	struct node *d = w->root;
	const char *p = path, *s;
	size_t l;
	for (int up; (up = next_component(&p, &s, &l)) >= 0;) {
		if (up) {
			if (d->parent)
				d = d->parent;
			continue;
		}
		if (!S_ISDIR(d->m.mode) || !(d = child(d, s, l)))
			return NULL;
	}
	return d;
}

void erofs_set_layer(struct erofs_writer *w, unsigned layer)
{
	w->layer = layer;
}

int erofs_remove(struct erofs_writer *w, const char *path, char *why, size_t why_len)
{
	struct node *n = lookup(w, path);
	if (!n)
		return 0;
	if (n == w->root)
		return erofs_fail(why, why_len, -EINVAL, "cannot remove the root", path);
	detach(n->parent, n);
	node_free(n);
	return 0;
}

int erofs_clear_dir(struct erofs_writer *w, const char *path, char *why, size_t why_len)
{
	(void)why, (void)why_len; /* nothing here fails yet; the API leaves room */
	struct node *d = lookup(w, path);
	if (!d || !S_ISDIR(d->m.mode))
		return 0;
	for (size_t i = 0; i < d->nkids;) {
		struct node *k = d->kids[i];
		if (k->layer < w->layer) {
			detach(d, k); /* moves the last child to i */
			node_free(k);
		} else {
			i++;
		}
	}
	return 0;
}

int erofs_add_hardlink(struct erofs_writer *w, const char *path, const char *target, char *why,
                       size_t why_len)
{
	struct node *t = lookup(w, target);
	if (!t || !(S_ISREG(t->m.mode) || S_ISLNK(t->m.mode)))
		return erofs_fail(why, why_len, -ENOENT, "a hard link to no file", target);
	struct erofs_meta m = t->m;
	uint64_t size = t->size;
	uint32_t blkaddr = t->blkaddr;
	char *tgt = t->target ? strdup(t->target) : NULL;
	if (t->target && !tgt)
		return erofs_fail(why, why_len, -ENOMEM, "out of memory at", path);
	struct node *n;
	int e = place(w, path, &m, &n, why, why_len);
	if (e) {
		free(tgt);
		return e;
	}
	n->size = size;
	n->blkaddr = blkaddr;
	n->target = tgt;
	n->shares_data = 1;
	/* One inode with two names, as long as both stay: replacing or
	 * removing either entry (a later layer) leaves the other intact, since
	 * each keeps the data and metadata. */
	n->link_id = t->link_id;
	return 0;
}

struct erofs_writer *erofs_writer_new(int fd)
{
	struct erofs_writer *w = calloc(1, sizeof(*w));
	if (!w || !(w->root = node_new("", 0, &default_dir))) {
		free(w);
		return NULL;
	}
	w->fd = fd;
	w->next_blk = 1; /* block 0 holds the superblock */
	if (!(w->wbuf = malloc(WBUF_SIZE))) {
		node_free(w->root);
		free(w);
		return NULL;
	}
	return w;
}

int erofs_add_dir(struct erofs_writer *w, const char *path, const struct erofs_meta *m, char *why,
                  size_t why_len)
{
	struct node *n;
	struct erofs_meta dm = *m;
	dm.mode = S_IFDIR | (m->mode & 07777);
	return place(w, path, &dm, &n, why, why_len);
}

int erofs_add_symlink(struct erofs_writer *w, const char *path, const struct erofs_meta *m,
                      const char *target, char *why, size_t why_len)
{
	size_t tl = strlen(target);
	if (tl == 0 || tl >= BLK)
		return erofs_fail(why, why_len, -ENAMETOOLONG,
		                  "a symlink target empty or over 4095 bytes", path);
	struct node *n;
	struct erofs_meta lm = *m;
	lm.mode = S_IFLNK | 0777;
	int e = place(w, path, &lm, &n, why, why_len);
	if (e)
		return e;
	if (!(n->target = strdup(target)))
		return erofs_fail(why, why_len, -ENOMEM, "out of memory at", path);
	n->size = tl;
	return 0;
}

int erofs_add_special(struct erofs_writer *w, const char *path, const struct erofs_meta *m,
                      char *why, size_t why_len)
{
	mode_t t = m->mode & S_IFMT;
	if (t != S_IFCHR && t != S_IFBLK && t != S_IFIFO && t != S_IFSOCK)
		return erofs_fail(why, why_len, -EINVAL, "not a device, fifo or socket", path);
	struct node *n;
	return place(w, path, m, &n, why, why_len);
}

int erofs_add_file(struct erofs_writer *w, const char *path, const struct erofs_meta *m,
                   uint64_t size, ssize_t (*read)(void *arg, void *buf, size_t len), void *arg,
                   char *why, size_t why_len)
{
	if (size > (uint64_t)UINT32_MAX * BLK - (uint64_t)w->next_blk * BLK)
		return erofs_fail(why, why_len, -EFBIG, "the image would be over 16 TiB at", path);
	struct node *n;
	struct erofs_meta fm = *m;
	fm.mode = S_IFREG | (m->mode & 07777);
	int e = place(w, path, &fm, &n, why, why_len);
	if (e)
		return e;
	n->size = size;
	n->blkaddr = size ? w->next_blk : 0;
	uint8_t *buf = malloc(COPY_CHUNK);
	if (!buf)
		return erofs_fail(why, why_len, -ENOMEM, "out of memory at", path);
	uint64_t off = (uint64_t)w->next_blk * BLK;
	for (uint64_t done = 0; done < size && !e;) {
		size_t want = size - done < COPY_CHUNK ? (size_t)(size - done) : COPY_CHUNK;
		ssize_t got = read(arg, buf, want);
		if (got <= 0 || (size_t)got > want) {
			e = erofs_fail(why, why_len, -EIO, "the data ended early at", path);
			break;
		}
		if ((e = erofs_write_sparse(w, buf, (size_t)got, off + done)))
			erofs_fail(why, why_len, e, "cannot write the image at", path);
		done += (uint64_t)got;
	}
	free(buf);
	if (!e)
		w->next_blk += erofs_blocks_for(size);
	return e;
}

void erofs_writer_free(struct erofs_writer *w)
{
	if (!w)
		return;
	node_free(w->root);
	free(w->primary);
	free(w->wbuf);
	free(w);
}
