/* Per-grammar queries compiled on demand by one background thread (see context_queries.h). A
 * grammar's slot goes NONE -> WANTED (queued) -> COMPILING -> READY or FAILED, under mu; the
 * queries are written before READY is set under mu, so a reader that saw READY under mu sees
 * them. The thread starts at the first request that does not wait. */
#include "plugins/context_queries.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"

enum slot_state { SLOT_NONE, SLOT_WANTED, SLOT_COMPILING, SLOT_READY, SLOT_FAILED };

struct slot {
  enum slot_state state;
  TSQuery *queries[CONTEXT_QUERY_COUNT];
  struct aug_err err; /* FAILED: why */
};

struct context_queries {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a slot was wanted or finished, or quit */
  bool thread_started, quit;
  pthread_t thread;
  size_t n_slots; /* grammars_count() */
  struct slot *slots;
};

/* Compiles grammar's queries into q (NULL where it has none). Outside mu. */
static int compile(const struct grammar *grammar, TSQuery *q[CONTEXT_QUERY_COUNT],
                   struct aug_err *err) {
  memset(q, 0, CONTEXT_QUERY_COUNT * sizeof *q);
  int rc = grammars_query_create(grammar, GRAMMAR_QUERY_SCOPES, &q[CONTEXT_QUERY_SCOPES], err);
  if (!rc)
    rc =
        grammars_query_create(grammar, GRAMMAR_QUERY_REFERENCES, &q[CONTEXT_QUERY_REFERENCES], err);
  size_t imports_len = 0, definitions_len = 0;
  const char *imports = grammars_query_source(grammar, GRAMMAR_QUERY_IMPORTS, &imports_len);
  const char *definitions =
      grammars_query_source(grammar, GRAMMAR_QUERY_DEFINITIONS, &definitions_len);
  if (!rc && (imports || definitions)) {
    char *source = aug_malloc(imports_len + definitions_len + 2);
    if (!source) {
      rc = aug_err_set(err, AUG_ENOMEM, "syntax context: out of memory");
    } else {
      size_t n = 0;
      if (imports) memcpy(source + n, imports, imports_len), n += imports_len;
      source[n++] = '\n';
      if (definitions) memcpy(source + n, definitions, definitions_len), n += definitions_len;
      source[n] = '\0';
      char label[128];
      snprintf(label, sizeof label, "%s/imports.scm + definitions.scm", grammar->queries);
      rc = grammars_query_compile(grammar, label, source, n, &q[CONTEXT_QUERY_OUTLINE], err);
      aug_free(source);
    }
  }
  if (rc) {
    for (int k = 0; k < CONTEXT_QUERY_COUNT; k++)
      if (q[k]) ts_query_delete(q[k]), q[k] = NULL;
  }
  return rc;
}

/* Compiles slot i, whose state the caller set to COMPILING; called with mu held, returns with it
 * held. */
static void compile_slot(struct context_queries *cq, size_t i) {
  struct slot *s = &cq->slots[i];
  TSQuery *q[CONTEXT_QUERY_COUNT];
  struct aug_err err = {0};
  pthread_mutex_unlock(&cq->mu);
  int rc = compile(grammars_at(i), q, &err);
  pthread_mutex_lock(&cq->mu);
  if (rc) {
    s->err = err;
    s->state = SLOT_FAILED;
  } else {
    memcpy(s->queries, q, sizeof q);
    s->state = SLOT_READY;
  }
  pthread_cond_broadcast(&cq->cv);
}

static void *compile_main(void *arg) {
  struct context_queries *cq = arg;
  pthread_mutex_lock(&cq->mu);
  for (;;) {
    size_t i = 0;
    while (!cq->quit) {
      for (i = 0; i < cq->n_slots && cq->slots[i].state != SLOT_WANTED; i++)
        ;
      if (i < cq->n_slots) break;
      pthread_cond_wait(&cq->cv, &cq->mu);
    }
    if (cq->quit) break;
    cq->slots[i].state = SLOT_COMPILING;
    compile_slot(cq, i);
  }
  pthread_mutex_unlock(&cq->mu);
  return NULL;
}

int context_queries_create(struct context_queries **out, struct aug_err *err) {
  *out = NULL;
  struct context_queries *cq = aug_calloc(1, sizeof *cq);
  if (cq) {
    cq->n_slots = grammars_count();
    cq->slots = aug_calloc(cq->n_slots ? cq->n_slots : 1, sizeof *cq->slots);
  }
  if (!cq || !cq->slots) {
    if (cq) aug_free(cq->slots);
    aug_free(cq);
    return aug_err_set(err, AUG_ENOMEM, "syntax context: out of memory");
  }
  pthread_mutex_init(&cq->mu, NULL);
  pthread_cond_init(&cq->cv, NULL);
  *out = cq;
  return 0;
}

void context_queries_destroy(struct context_queries *cq) {
  if (!cq) return;
  if (cq->thread_started) {
    pthread_mutex_lock(&cq->mu);
    cq->quit = true;
    pthread_cond_broadcast(&cq->cv);
    pthread_mutex_unlock(&cq->mu);
    pthread_join(cq->thread, NULL);
  }
  for (size_t i = 0; i < cq->n_slots; i++)
    for (int k = 0; k < CONTEXT_QUERY_COUNT; k++)
      if (cq->slots[i].queries[k]) ts_query_delete(cq->slots[i].queries[k]);
  pthread_mutex_destroy(&cq->mu);
  pthread_cond_destroy(&cq->cv);
  aug_free(cq->slots);
  aug_free(cq);
}

int context_queries_get(struct context_queries *cq, const struct grammar *grammar, bool wait,
                        const TSQuery *out[CONTEXT_QUERY_COUNT], bool *ready, struct aug_err *err) {
  *ready = false;
  size_t i = 0;
  while (i < cq->n_slots && grammars_at(i) != grammar)
    i++;
  if (i == cq->n_slots)
    return aug_err_set(err, AUG_ENOTFOUND, "syntax context: grammar '%s' is not compiled in",
                       grammar ? grammar->name : "");
  int rc = 0;
  pthread_mutex_lock(&cq->mu);
  struct slot *s = &cq->slots[i];
  if (wait) {
    if (s->state == SLOT_NONE || s->state == SLOT_WANTED) {
      s->state = SLOT_COMPILING;
      compile_slot(cq, i);
    }
    while (s->state == SLOT_COMPILING)
      pthread_cond_wait(&cq->cv, &cq->mu);
  } else if (s->state == SLOT_NONE) {
    if (!cq->thread_started) {
      if (pthread_create(&cq->thread, NULL, compile_main, cq)) {
        pthread_mutex_unlock(&cq->mu);
        return aug_err_set(err, AUG_ENOMEM, "syntax context: cannot start the query thread");
      }
      cq->thread_started = true;
    }
    s->state = SLOT_WANTED;
    pthread_cond_broadcast(&cq->cv);
  }
  if (s->state == SLOT_READY) {
    for (int k = 0; k < CONTEXT_QUERY_COUNT; k++)
      out[k] = s->queries[k];
    *ready = true;
  } else if (s->state == SLOT_FAILED) {
    if (err) *err = s->err;
    rc = s->err.code ? s->err.code : AUG_EFORMAT;
  }
  pthread_mutex_unlock(&cq->mu);
  return rc;
}

uint32_t context_queries_capture_id(const TSQuery *query, const char *name) {
  uint32_t n = ts_query_capture_count(query);
  size_t name_len = strlen(name);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t len;
    const char *s = ts_query_capture_name_for_id(query, i, &len);
    if (len == name_len && !memcmp(s, name, len)) return i;
  }
  return UINT32_MAX;
}
