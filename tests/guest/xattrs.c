/*
 * xattrs PATH...: prints each path's extended attributes as
 * "PATH NAME HEX-VALUE" lines, sorted as listxattr gives them. Static, so
 * tests can put it into an image and read its xattrs inside a sandbox.
 */
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		char names[4096];
		ssize_t n = llistxattr(argv[i], names, sizeof(names));
		if (n < 0) {
			perror(argv[i]);
			return 1;
		}
		for (char *p = names; p < names + n; p += strlen(p) + 1) {
			unsigned char v[4096];
			ssize_t l = lgetxattr(argv[i], p, v, sizeof(v));
			if (l < 0) {
				perror(p);
				return 1;
			}
			printf("%s %s ", argv[i], p);
			for (ssize_t k = 0; k < l; k++)
				printf("%02x", v[k]);
			printf("\n");
		}
	}
	return 0;
}
