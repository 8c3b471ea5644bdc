/* What erofs.c (the tree) and erofs_layout.c (writing it out) share. */
#ifndef MSB_IMAGE_EROFS_INT_H
#define MSB_IMAGE_EROFS_INT_H

#include "erofs.h"

#include <stddef.h>
#include <stdint.h>

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

/* Sets @why to "@what: @path" and returns @e. */
int erofs_fail(char *why, size_t len, int e, const char *what, const char *path);

/* File data: @len bytes at image offset @off, whole zero blocks left as
 * holes, through the writer's buffer. */
int erofs_write_sparse(struct erofs_writer *w, const uint8_t *buf, size_t len, uint64_t off);

/* Blocks that @size bytes take. */
uint32_t erofs_blocks_for(uint64_t size);

#endif
