/* The table that grammars/grammars.cmake generates from grammars/queries/<language>/<kind>.scm
 * (private to grammars/). */
#ifndef AUGURY_GRAMMARS_GRAMMARS_QUERIES_H
#define AUGURY_GRAMMARS_GRAMMARS_QUERIES_H

#include <stddef.h>

struct grammars_query_source {
  const char *language; /* folder name: the grammar's name */
  const char *kind;     /* file name without .scm */
  const char *text;     /* NUL-terminated */
  size_t length;
};

/* Ends with an entry whose language is NULL. */
extern const struct grammars_query_source grammars_query_sources[];

#endif
