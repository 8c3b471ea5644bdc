#include "erofs.h"
#include "le.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLK          4096u
#define BLKBITS      12
#define SB_OFFSET    1024
#define MAGIC        0xE0F5E1E2u
#define INODE_SIZE   64 /* extended */
#define DIRENT_SIZE  12
#define LAYOUT_PLAIN 0
#define FORMAT_EXT   1
#define COPY_CHUNK   (256u << 10)

enum { FT_UNKNOWN, FT_REG, FT_DIR, FT_CHR, FT_BLK, FT_FIFO, FT_SOCK, FT_LNK };

struct node {
	char *name;
	struct node *parent;
	struct node **kids; /* directories: sorted when written */
	size_t nkids, cap;
	struct erofs_meta m;
	uint64_t size;    /* bytes of data */
	uint32_t blkaddr; /* first data block */
	uint64_t nid;
	uint32_t ino;
	char *target; /* symlinks: data written at finish */
	unsigned layer;
	int shares_data;  /* a hard link: blkaddr is the target's */
	uint32_t link_id; /* entries with one id are one inode (hard links) */
	uint32_t nlink;   /* non-directories: the entries of this inode */
	int alias;        /* another entry of the same inode holds it */
	uint8_t *xattrs;  /* the inline entries, each 4-byte aligned */
	size_t xlen;
	uint64_t meta_off; /* inode (and xattrs) offset from meta_blkaddr */
};

struct erofs_writer {
	int fd;
	struct node *root;
	uint32_t next_blk; /* next free data block */
	uint32_t ninodes;
	uint64_t meta_bytes; /* the inode table's size so far */
	unsigned layer;
	uint32_t next_link_id;
	struct node **primary; /* at finish: link id -> the entry holding the inode */
	/* File data is appended in order: gathered here into large writes
	 * (thousands of small files would otherwise be a pwrite each). */
	uint8_t *wbuf;
	size_t wlen;
	uint64_t woff; /* where wbuf[0] goes in the image */
};

#define WBUF_SIZE (1u << 20)

static int fail(char *why, size_t len, int e, const char *what, const char *path)
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
			return fail(why, why_len, -ENAMETOOLONG, "a name longer than 255 bytes in",
			            path);
		if (n == EROFS_DEPTH_MAX)
			return fail(why, why_len, -ELOOP, "a path deeper than 128 levels", path);
		comp[n] = s;
		clen[n++] = l;
	}
	struct node *d = w->root;
	for (int i = 0; i + 1 < n; i++) {
		struct node *c = child(d, comp[i], clen[i]);
		if (!c) {
			if (!(c = node_new(comp[i], clen[i], &default_dir)) || attach(d, c) < 0) {
				node_free(c);
				return fail(why, why_len, -ENOMEM, "out of memory at", path);
			}
		} else if (!S_ISDIR(c->m.mode)) {
			return fail(why, why_len, -ENOTDIR, "an entry under a non-directory", path);
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
			return fail(why, why_len, -EISDIR, "the root must be a directory", path);
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
		return fail(why, why_len, -ENOMEM, "out of memory at", path);
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
		return fail(why, why_len, -ENOENT, "an xattr for no entry", path);
	int idx = -1;
	size_t plen = 0;
	for (size_t i = 0; i < sizeof(xattr_ns) / sizeof(xattr_ns[0]) && idx < 0; i++) {
		plen = strlen(xattr_ns[i].prefix);
		if (!strncmp(name, xattr_ns[i].prefix, plen))
			idx = (int)i;
	}
	if (idx < 0)
		return fail(why, why_len, -EOPNOTSUPP,
		            "an xattr outside user., trusted., security.", name);
	const char *suffix = name + plen;
	size_t sl = strlen(suffix);
	if (sl == 0 || sl > 255 || len > EROFS_XATTR_MAX)
		return fail(why, why_len, -E2BIG, "an xattr name or value too long", name);
	/* drop an earlier value of the same name */
	uint8_t *kept = malloc(n->xlen + XATTR_ALIGN(4 + sl + len));
	if (!kept)
		return fail(why, why_len, -ENOMEM, "out of memory at", path);
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
		return fail(why, why_len, -E2BIG, "more than 2048 bytes of xattrs at", path);
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
		return fail(why, why_len, -EINVAL, "cannot remove the root", path);
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
		return fail(why, why_len, -ENOENT, "a hard link to no file", target);
	struct erofs_meta m = t->m;
	uint64_t size = t->size;
	uint32_t blkaddr = t->blkaddr;
	char *tgt = t->target ? strdup(t->target) : NULL;
	if (t->target && !tgt)
		return fail(why, why_len, -ENOMEM, "out of memory at", path);
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
		return fail(why, why_len, -ENAMETOOLONG,
		            "a symlink target empty or over 4095 bytes", path);
	struct node *n;
	struct erofs_meta lm = *m;
	lm.mode = S_IFLNK | 0777;
	int e = place(w, path, &lm, &n, why, why_len);
	if (e)
		return e;
	if (!(n->target = strdup(target)))
		return fail(why, why_len, -ENOMEM, "out of memory at", path);
	n->size = tl;
	return 0;
}

int erofs_add_special(struct erofs_writer *w, const char *path, const struct erofs_meta *m,
                      char *why, size_t why_len)
{
	mode_t t = m->mode & S_IFMT;
	if (t != S_IFCHR && t != S_IFBLK && t != S_IFIFO && t != S_IFSOCK)
		return fail(why, why_len, -EINVAL, "not a device, fifo or socket", path);
	struct node *n;
	return place(w, path, m, &n, why, why_len);
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

static int all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

static int flush_data(struct erofs_writer *w)
{
	int e = w->wlen ? pwrite_all(w->fd, w->wbuf, w->wlen, w->woff) : 0;
	w->wlen = 0;
	return e;
}

/* @len bytes of file data at @off: joined to the buffered ones when they
 * follow them, else written after them. */
static int write_data_at(struct erofs_writer *w, const uint8_t *buf, size_t len, uint64_t off)
{
	uint64_t end = w->woff + w->wlen;
	/* The rest of the last file's block: zeros in the buffer, one write. */
	if (w->wlen && off > end && off - end < BLK && w->wlen + (off - end) + len <= WBUF_SIZE) {
		memset(w->wbuf + w->wlen, 0, (size_t)(off - end));
		w->wlen += (size_t)(off - end);
	}
	if (w->wlen && (off != w->woff + w->wlen || w->wlen + len > WBUF_SIZE)) {
		int e = flush_data(w);
		if (e)
			return e;
	}
	if (len >= WBUF_SIZE)
		return pwrite_all(w->fd, buf, len, off);
	if (!w->wlen)
		w->woff = off;
	memcpy(w->wbuf + w->wlen, buf, len);
	w->wlen += len;
	return 0;
}

/* Writes @len bytes at @off, leaving whole zero blocks unwritten: holes in
 * the image file, which read back as zeroes (finish sizes the file). */
static int write_sparse(struct erofs_writer *w, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t i = 0;
	while (i < len) {
		/* up to the next block boundary of the image */
		size_t n = BLK - (size_t)((off + i) % BLK);
		if (n > len - i)
			n = len - i;
		if (n == BLK && all_zero(buf + i, n)) {
			i += n;
			continue;
		}
		size_t run = n;
		while (i + run < len) { /* join data blocks into one write */
			size_t m = len - i - run < BLK ? len - i - run : BLK;
			if (m == BLK && all_zero(buf + i + run, m))
				break;
			run += m;
		}
		int e = write_data_at(w, buf + i, run, off + i);
		if (e)
			return e;
		i += run;
	}
	return 0;
}

static uint32_t blocks_for(uint64_t size)
{
	return (uint32_t)((size + BLK - 1) / BLK);
}

int erofs_add_file(struct erofs_writer *w, const char *path, const struct erofs_meta *m,
                   uint64_t size, ssize_t (*read)(void *arg, void *buf, size_t len), void *arg,
                   char *why, size_t why_len)
{
	if (size > (uint64_t)UINT32_MAX * BLK - (uint64_t)w->next_blk * BLK)
		return fail(why, why_len, -EFBIG, "the image would be over 16 TiB at", path);
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
		return fail(why, why_len, -ENOMEM, "out of memory at", path);
	uint64_t off = (uint64_t)w->next_blk * BLK;
	for (uint64_t done = 0; done < size && !e;) {
		size_t want = size - done < COPY_CHUNK ? (size_t)(size - done) : COPY_CHUNK;
		ssize_t got = read(arg, buf, want);
		if (got <= 0 || (size_t)got > want) {
			e = fail(why, why_len, -EIO, "the data ended early at", path);
			break;
		}
		if ((e = write_sparse(w, buf, (size_t)got, off + done)))
			fail(why, why_len, e, "cannot write the image at", path);
		done += (uint64_t)got;
	}
	free(buf);
	if (!e)
		w->next_blk += blocks_for(size);
	return e;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp((*(struct node *const *)a)->name, (*(struct node *const *)b)->name);
}

static uint8_t ftype(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return FT_REG;
	case S_IFDIR:
		return FT_DIR;
	case S_IFCHR:
		return FT_CHR;
	case S_IFBLK:
		return FT_BLK;
	case S_IFIFO:
		return FT_FIFO;
	case S_IFSOCK:
		return FT_SOCK;
	case S_IFLNK:
		return FT_LNK;
	}
	return FT_UNKNOWN;
}

/* Numbers every inode depth first (nid: 64-byte slots from meta_blkaddr)
 * and sorts each directory. */
static void number(struct erofs_writer *w, struct node *n)
{
	if (!S_ISDIR(n->m.mode)) {
		struct node *p = w->primary[n->link_id];
		if (p) { /* a hard link to an inode numbered already */
			n->alias = 1;
			n->nid = p->nid;
			n->ino = p->ino;
			p->nlink++;
			return;
		}
		w->primary[n->link_id] = n;
		n->nlink = 1;
	}
	n->ino = ++w->ninodes;
	/* an inode and its inline xattrs (a 12-byte header, then the entries)
	 * take 32-byte slots and never straddle a block */
	size_t isz = INODE_SIZE + (n->xlen ? 12 + n->xlen : 0);
	isz = (isz + 31) & ~(size_t)31;
	if (w->meta_bytes / BLK != (w->meta_bytes + isz - 1) / BLK)
		w->meta_bytes = (w->meta_bytes / BLK + 1) * BLK;
	n->meta_off = w->meta_bytes;
	n->nid = w->meta_bytes / 32;
	w->meta_bytes += isz;
	if (!S_ISDIR(n->m.mode))
		return;
	qsort(n->kids, n->nkids, sizeof(*n->kids), cmp_name);
	for (size_t i = 0; i < n->nkids; i++)
		number(w, n->kids[i]);
}

struct dent {
	const char *name;
	const struct node *node;
};

static int cmp_dent(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

/* One directory's blocks: its entries, "." and ".." among them, in byte
 * order of their names (the kernel looks names up by binary search); each
 * block holds its dirents, then their names. */
static int write_dir(struct erofs_writer *w, struct node *d)
{
	size_t total = d->nkids + 2;
	struct dent *ents = malloc(total * sizeof(*ents));
	uint8_t *blk = calloc(1, BLK);
	if (!ents || !blk) {
		free(ents);
		free(blk);
		return -ENOMEM;
	}
	ents[0] = (struct dent){".", d};
	ents[1] = (struct dent){"..", d->parent ? d->parent : d};
	for (size_t i = 0; i < d->nkids; i++)
		ents[i + 2] = (struct dent){d->kids[i]->name, d->kids[i]};
	qsort(ents, total, sizeof(*ents), cmp_dent);
	uint32_t start = w->next_blk, nblk = 0;
	uint64_t last_used = 0;
	int e = 0;
	for (size_t i = 0; i < total && !e;) {
		size_t first = i, used = 0; /* as many entries as fit in this block */
		while (i < total && used + DIRENT_SIZE + strlen(ents[i].name) <= BLK)
			used += DIRENT_SIZE + strlen(ents[i++].name);
		memset(blk, 0, BLK);
		size_t nameoff = (i - first) * DIRENT_SIZE;
		for (size_t k = first; k < i; k++) {
			uint8_t *de = blk + (k - first) * DIRENT_SIZE;
			size_t nl = strlen(ents[k].name);
			put_le(de, ents[k].node->nid, 8);
			put_le(de + 8, nameoff, 2);
			de[10] = ftype(ents[k].node->m.mode);
			memcpy(blk + nameoff, ents[k].name, nl);
			nameoff += nl;
		}
		last_used = nameoff;
		e = write_data_at(w, blk, BLK, (uint64_t)(start + nblk) * BLK);
		nblk++;
	}
	free(blk);
	free(ents);
	d->blkaddr = start;
	/* the last block's names end at i_size */
	d->size = (uint64_t)(nblk - 1) * BLK + last_used;
	w->next_blk += nblk;
	return e;
}

static int write_data(struct erofs_writer *w, struct node *n)
{
	int e = 0;
	if (S_ISLNK(n->m.mode) && !n->alias) {
		n->blkaddr = w->next_blk;
		e = write_data_at(w, (const uint8_t *)n->target, n->size,
		                  (uint64_t)n->blkaddr * BLK);
		w->next_blk += blocks_for(n->size);
	} else if (S_ISDIR(n->m.mode)) {
		for (size_t i = 0; i < n->nkids && !e; i++)
			e = write_data(w, n->kids[i]);
		if (!e)
			e = write_dir(w, n);
	}
	return e;
}

static uint32_t nlink_of(const struct node *n)
{
	if (!S_ISDIR(n->m.mode))
		return n->nlink;
	uint32_t l = 2;
	for (size_t i = 0; i < n->nkids; i++)
		l += S_ISDIR(n->kids[i]->m.mode);
	return l;
}

/* Fills the inode table (@meta, w->meta_bytes long, zeroed) for @n and
 * everything under it. */
static void write_inodes(struct erofs_writer *w, struct node *n, uint8_t *meta)
{
	if (n->alias)
		return;
	uint8_t *in = meta + n->meta_off;
	put_le(in, FORMAT_EXT | (LAYOUT_PLAIN << 1), 2);
	if (n->xlen) { /* i_xattr_icount: the inline area is 12 + (icount - 1) * 4 */
		put_le(in + 2, n->xlen / 4 + 1, 2);
		memcpy(in + INODE_SIZE + 12, n->xattrs, n->xlen);
	}
	put_le(in + 4, n->m.mode, 2);
	put_le(in + 8, n->size, 8);
	uint32_t u = n->blkaddr;
	if (S_ISCHR(n->m.mode) || S_ISBLK(n->m.mode)) /* Linux's new_encode_dev() */
		u = (n->m.rdev_minor & 0xff) | (n->m.rdev_major << 8) |
		    ((n->m.rdev_minor & ~0xffu) << 12);
	else if (!S_ISREG(n->m.mode) && !S_ISDIR(n->m.mode) && !S_ISLNK(n->m.mode))
		u = 0;
	put_le(in + 16, u, 4);
	put_le(in + 20, n->ino, 4);
	put_le(in + 24, n->m.uid, 4);
	put_le(in + 28, n->m.gid, 4);
	put_le(in + 32, (uint64_t)n->m.mtime, 8);
	put_le(in + 40, n->m.mtime_nsec, 4);
	put_le(in + 44, nlink_of(n), 4);
	for (size_t i = 0; S_ISDIR(n->m.mode) && i < n->nkids; i++)
		write_inodes(w, n->kids[i], meta);
}

int erofs_writer_finish(struct erofs_writer *w, char *why, size_t why_len)
{
	int e;
	w->ninodes = 0;
	w->meta_bytes = 0;
	free(w->primary);
	if (!(w->primary = calloc((size_t)w->next_link_id + 1, sizeof(*w->primary))))
		return fail(why, why_len, -ENOMEM, "out of memory at", "finish");
	number(w, w->root);
	if (w->root->nid > UINT16_MAX)
		return fail(why, why_len, -EOVERFLOW, "the root inode is too far", "/");
	e = write_data(w, w->root);
	if (!e)
		e = flush_data(w);
	if (e)
		return fail(why, why_len, e, "cannot write the image", "directories");
	uint32_t meta_blk = w->next_blk;
	uint64_t meta_bytes = w->meta_bytes;
	/* The whole table in one write: an image has tens of thousands of
	 * inodes, each a few dozen bytes. */
	uint8_t *meta = calloc(1, meta_bytes ? meta_bytes : 1);
	if (!meta)
		return fail(why, why_len, -ENOMEM, "out of memory at", "inodes");
	write_inodes(w, w->root, meta);
	e = pwrite_all(w->fd, meta, meta_bytes, (uint64_t)meta_blk * BLK);
	free(meta);
	if (e)
		return fail(why, why_len, e, "cannot write the image", "inodes");
	uint32_t total = meta_blk + blocks_for(meta_bytes);
	if (ftruncate(w->fd, (off_t)total * BLK) < 0)
		return fail(why, why_len, -errno, "cannot size the image", "");
	uint8_t sb[128] = {0};
	put_le(sb, MAGIC, 4);
	sb[12] = BLKBITS;
	put_le(sb + 14, w->root->nid, 2);
	put_le(sb + 16, w->ninodes, 8);
	put_le(sb + 24, (uint64_t)w->root->m.mtime, 8);
	put_le(sb + 32, w->root->m.mtime_nsec, 4);
	put_le(sb + 36, total, 4);
	put_le(sb + 40, meta_blk, 4);
	if ((e = pwrite_all(w->fd, sb, sizeof(sb), SB_OFFSET)))
		return fail(why, why_len, e, "cannot write the image", "superblock");
	return 0;
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
