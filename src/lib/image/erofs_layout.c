/*
 * The erofs image's layout, written at erofs_writer_finish(): file data
 * (gathered into large writes as it arrives), then symlink targets and
 * directory blocks, the inode table and the superblock. The tree it lays
 * out is built by erofs.c.
 */
#include "erofs.h"
#include "erofs_int.h"
#include "le.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
int erofs_write_sparse(struct erofs_writer *w, const uint8_t *buf, size_t len, uint64_t off)
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

uint32_t erofs_blocks_for(uint64_t size)
{
	return (uint32_t)((size + BLK - 1) / BLK);
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
		w->next_blk += erofs_blocks_for(n->size);
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
		return erofs_fail(why, why_len, -ENOMEM, "out of memory at", "finish");
	number(w, w->root);
	if (w->root->nid > UINT16_MAX)
		return erofs_fail(why, why_len, -EOVERFLOW, "the root inode is too far", "/");
	e = write_data(w, w->root);
	if (!e)
		e = flush_data(w);
	if (e)
		return erofs_fail(why, why_len, e, "cannot write the image", "directories");
	uint32_t meta_blk = w->next_blk;
	uint64_t meta_bytes = w->meta_bytes;
	/* The whole table in one write: an image has tens of thousands of
	 * inodes, each a few dozen bytes. */
	uint8_t *meta = calloc(1, meta_bytes ? meta_bytes : 1);
	if (!meta)
		return erofs_fail(why, why_len, -ENOMEM, "out of memory at", "inodes");
	write_inodes(w, w->root, meta);
	e = pwrite_all(w->fd, meta, meta_bytes, (uint64_t)meta_blk * BLK);
	free(meta);
	if (e)
		return erofs_fail(why, why_len, e, "cannot write the image", "inodes");
	uint32_t total = meta_blk + erofs_blocks_for(meta_bytes);
	if (ftruncate(w->fd, (off_t)total * BLK) < 0)
		return erofs_fail(why, why_len, -errno, "cannot size the image", "");
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
		return erofs_fail(why, why_len, e, "cannot write the image", "superblock");
	return 0;
}
