/* Freeing a struct sandboxfile: everything in it is its own (see
 * sandboxfile.h), and a half-read one (an error part way) is freed the same
 * way, so every array is calloc'd and its count kept as it fills. */
#include "sandboxfile.h"

#include <stdlib.h>

static void str_free(struct sf_str *s)
{
	free(s->s);
}

static void list_free(struct sf_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		str_free(&l->v[i]);
	free(l->v);
}

static void map_free(struct sf_map *m)
{
	for (size_t i = 0; i < m->n; i++) {
		str_free(&m->v[i].name);
		str_free(&m->v[i].value);
	}
	free(m->v);
}

static void sandbox_free(struct sf_sandbox *s)
{
	str_free(&s->name);
	str_free(&s->image);
	list_free(&s->envs);
	str_free(&s->env_file);
	str_free(&s->workdir);
	str_free(&s->shell);
	map_free(&s->scripts);
	list_free(&s->command);
	list_free(&s->depends_on);
	free(s->deps);
	for (size_t i = 0; i < s->volumes.n; i++) {
		free(s->volumes.v[i].host);
		free(s->volumes.v[i].guest);
	}
	free(s->volumes.v);
	free(s->ports.v);
	for (size_t i = 0; i < s->imports.n; i++) {
		str_free(&s->imports.v[i].build);
		map_free(&s->imports.v[i].paths);
	}
	free(s->imports.v);
}

void sandboxfile_free(struct sandboxfile *sf)
{
	if (!sf)
		return;
	free(sf->display_name);
	str_free(&sf->description);
	list_free(&sf->authors);
	for (size_t i = 0; i < sf->nsandboxes; i++)
		sandbox_free(&sf->sandboxes[i]);
	free(sf->sandboxes);
	for (size_t i = 0; i < sf->nbuilds; i++) {
		struct sf_build *b = &sf->builds[i];
		str_free(&b->name);
		str_free(&b->image);
		list_free(&b->envs);
		str_free(&b->workdir);
		map_free(&b->steps);
		map_free(&b->exports);
	}
	free(sf->builds);
	free(sf);
}
