/* The quality bench's parse check (run_quality.py): for each file named on stdin, one per line,
 * prints the number of ERROR and MISSING nodes in its tree-sitter tree, or "-" when no grammar
 * takes its name. One process for a whole run: the runner asks before and after inserting each
 * suggestion, and a process per question would cost more than the parse.
 *   cmake --build build --target quality_parse_check
 *   printf 'a.py\nb.c\n' | ./build/quality_parse_check */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammars/syntax.h"

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc((size_t)size + 1);
  if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *len = buf ? (size_t)size : 0;
  return buf;
}

static void check(const char *path) {
  const struct grammar *grammar = grammars_find_path(path);
  size_t len = 0;
  char *text = grammar ? read_file(path, &len) : NULL;
  struct syntax_doc *doc = NULL;
  struct aug_err err = {0};
  if (!text || syntax_doc_create(grammar, &doc, &err) ||
      syntax_doc_set_text(doc, text, len, &err)) {
    printf("-\n");
    if (err.msg[0]) fprintf(stderr, "parse_check: %s: %s\n", path, err.msg);
  } else {
    printf("%zu\n", syntax_doc_error_count(doc));
  }
  fflush(stdout);
  syntax_doc_destroy(doc);
  free(text);
}

int main(void) {
  char line[4096];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0]) check(line);
  }
  return 0;
}
