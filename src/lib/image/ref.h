/*
 * Image references as Docker spells them (distribution's reference
 * grammar): [DOMAIN/]PATH[:TAG][@DIGEST].
 *
 *   python                    -> docker.io/library/python:latest
 *   python:3.11               -> docker.io/library/python:3.11
 *   ghcr.io/owner/repo:tag    -> ghcr.io/owner/repo:tag
 *   localhost:5000/x          -> localhost:5000/x:latest
 *   name@sha256:<64 hex>      -> docker.io/library/name@sha256:...
 *
 * The first component is a registry when it has a '.' or a ':' or is
 * "localhost"; Docker Hub's name docker.io is served by
 * registry-1.docker.io, and its one-component names live under library/.
 * The input is a user's: everything is checked and an error says what is
 * wrong with it.
 */
#ifndef MSB_IMAGE_REF_H
#define MSB_IMAGE_REF_H

#include <stddef.h>

#define IMAGE_NAME_MAX   255 /* domain/path, as Docker limits it */
#define IMAGE_TAG_MAX    128
#define IMAGE_DIGEST_MAX 135 /* algorithm ':' hex; sha512 is the longest we take */

struct image_ref {
	char domain[IMAGE_NAME_MAX + 1];     /* as the user named it, or "docker.io" */
	char registry[IMAGE_NAME_MAX + 1];   /* the host[:port] to talk to */
	char repository[IMAGE_NAME_MAX + 1]; /* "library/python" */
	char tag[IMAGE_TAG_MAX + 1];         /* "" when only a digest was given */
	char digest[IMAGE_DIGEST_MAX + 1];   /* "sha256:..." or "" */
};

/*
 * Parses @s into @out with Docker's defaults. Returns 0, or -EINVAL with
 * @why saying what is wrong ("repository name must be lowercase", ...).
 */
int image_ref_parse(const char *s, struct image_ref *out, char *why, size_t why_len);

/* The full reference: "docker.io/library/python:3.11", with "@digest" when
 * there is one. Returns 0 or -ENAMETOOLONG. */
int image_ref_format(const struct image_ref *r, char *buf, size_t len);

/* 1 when the registry is on this machine (localhost, 127.0.0.0/8, [::1]):
 * plain HTTP is allowed there without asking. */
int image_ref_is_loopback(const struct image_ref *r);

#endif
