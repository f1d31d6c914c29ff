/* `augury plan -m MODEL [--vram SIZE] [--ctx N] [--kv f16|q8_0|q4_0] [--json]`: the offload
 * plan for this machine (engine/plan.h) and what it is worth. It measures the host (free RAM,
 * memory read, the CPU backend's decode matvec) and the GPU backend's device if there is one,
 * then prints the memory per device (weights, KV, scratch, margin), the placement and the
 * expected decode tokens/s. --vram simulates a GPU of that size: with the measured device's
 * bandwidth when it is faster than the host, else an assumed figure, printed as assumed. Other
 * quants of the same model (same architecture, block count and embedding length) found beside
 * the model or in the Hugging Face cache are planned too and compared in one sentence each. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "cli/args.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/plan.h"
#include "engine/quant.h"

int cli_cmd_plan(int argc, char **argv);

/* A small discrete card between the two in the planner's tests (RX 6500 XT 144 GB/s, RTX 4060
 * 272 GB/s), for --vram when this machine has no GPU faster than its CPU. */
#define PLAN_ASSUMED_GPU_BANDWIDTH 200e9
#define PLAN_MAX_SIBLINGS 16
#define PLAN_SCAN_DEPTH 6 /* hub/models--org--name/snapshots/REV/[subdir/]file.gguf */

struct sibling {
  char path[4096];
  struct plan_model *shape;
  struct plan_result plan;
};

struct plan_cli {
  const char *model_path;
  struct stat model_stat;
  char arch[32];
  uint64_t n_layer, n_embd;
  struct sibling siblings[PLAN_MAX_SIBLINGS];
  size_t n_siblings;
};

/* ---- other quants of the same model ------------------------------------------------------------
 */

static bool gguf_same_model(const struct plan_cli *c, const char *path) {
  struct gguf_open_params gp = gguf_open_params_default();
  struct gguf_file *f = NULL;
  if (gguf_open(path, &gp, &f, NULL) != 0) return false;
  const char *arch = NULL;
  size_t len = 0;
  bool same = gguf_get_string(f, "general.architecture", &arch, &len, NULL) == 0 &&
              len == strlen(c->arch) && !memcmp(arch, c->arch, len);
  char key[96];
  uint64_t v = 0;
  snprintf(key, sizeof key, "%s.block_count", c->arch);
  same = same && gguf_get_uint(f, key, &v, NULL) == 0 && v == c->n_layer;
  snprintf(key, sizeof key, "%s.embedding_length", c->arch);
  same = same && gguf_get_uint(f, key, &v, NULL) == 0 && v == c->n_embd;
  gguf_close(f);
  return same;
}

static void sibling_add(struct plan_cli *c, const char *path) {
  if (c->n_siblings == PLAN_MAX_SIBLINGS) return;
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return;
  if (st.st_dev == c->model_stat.st_dev && st.st_ino == c->model_stat.st_ino) return;
  for (size_t i = 0; i < c->n_siblings; i++) { /* the HF cache links snapshots to blobs */
    struct stat other;
    if (stat(c->siblings[i].path, &other) == 0 && other.st_dev == st.st_dev &&
        other.st_ino == st.st_ino)
      return;
  }
  if (!gguf_same_model(c, path)) return;
  struct model *m = NULL;
  if (model_load(path, &m, NULL) != 0) return; /* a split file, or one this build cannot run */
  struct sibling *s = &c->siblings[c->n_siblings];
  s->shape = malloc(sizeof *s->shape);
  if (s->shape && plan_model_from_model(m, s->shape, NULL) == 0) {
    snprintf(s->path, sizeof s->path, "%s", path);
    if (!s->shape->quant[0]) { /* no general.file_type: the file name says it */
      const char *base = strrchr(path, '/');
      snprintf(s->shape->quant, sizeof s->shape->quant, "%.31s", base ? base + 1 : path);
    }
    c->n_siblings++;
  } else {
    free(s->shape);
    s->shape = NULL;
  }
  model_destroy(m);
}

static bool ends_with_gguf(const char *name) {
  size_t n = strlen(name);
  return n > 5 && !strcmp(name + n - 5, ".gguf");
}

static void scan_dir(struct plan_cli *c, const char *dir, int depth) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && c->n_siblings < PLAN_MAX_SIBLINGS) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
    struct stat st;
    if (stat(path, &st) != 0) continue;
    if (S_ISDIR(st.st_mode) && depth > 0)
      scan_dir(c, path, depth - 1);
    else if (S_ISREG(st.st_mode) && ends_with_gguf(e->d_name))
      sibling_add(c, path);
  }
  closedir(d);
}

static void find_siblings(struct plan_cli *c) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", c->model_path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(dir, sizeof dir, ".");
  scan_dir(c, dir, 0);
  /* The Hugging Face cache, where its environment or the default says it is. */
  const char *hub = getenv("HF_HUB_CACHE"), *hf_home = getenv("HF_HOME"), *home = getenv("HOME");
  if (hub && *hub)
    snprintf(dir, sizeof dir, "%s", hub);
  else if (hf_home && *hf_home)
    snprintf(dir, sizeof dir, "%s/hub", hf_home);
  else if (home && *home)
    snprintf(dir, sizeof dir, "%s/.cache/huggingface/hub", home);
  else
    return;
  scan_dir(c, dir, PLAN_SCAN_DEPTH);
}

/* ---- printing
 * ------------------------------------------------------------------------------------ */

static void fmt_bytes(char *buf, size_t size, uint64_t bytes) {
  double v = (double)bytes;
  if (bytes == 0)
    snprintf(buf, size, "0");
  else if (v >= 1024.0 * 1024 * 1024)
    snprintf(buf, size, "%.2f GiB", v / (1024.0 * 1024 * 1024));
  else if (v >= 1024.0 * 1024)
    snprintf(buf, size, "%.0f MiB", v / (1024.0 * 1024));
  else
    snprintf(buf, size, "%.0f KiB", v / 1024.0);
}

static void print_placement(const struct plan_result *r) {
  if (r->n_gpu_layers == 0) {
    printf("placement: everything on the CPU\n");
  } else if (r->output_on_gpu) {
    printf("placement: all %u layers on the GPU (blocks 0-%u and the head); the token embedding "
           "on the host\n",
           r->n_layer + 1, r->n_layer - 1);
  } else {
    printf("placement: %u of %u layers on the GPU (blocks %u-%u); blocks 0-%u, the head and the "
           "token embedding on the host\n",
           r->n_gpu_layers, r->n_layer + 1, r->n_layer - r->gpu_blocks, r->n_layer - 1,
           r->n_layer - r->gpu_blocks - 1);
  }
  printf("          (llama.cpp: -ngl %u)\n", r->n_gpu_layers);
}

static void print_memory(const struct plan_result *r, const struct plan_device *gpu,
                         const struct plan_device *host) {
  const char *rows[] = {"weights", "KV cache", "scratch", "margin", "total"};
  uint64_t g[5] = {r->gpu.weights, r->gpu.kv, r->gpu.scratch, r->gpu.margin,
                   plan_memory_total(&r->gpu)};
  uint64_t h[5] = {r->host.weights, r->host.kv, r->host.scratch, 0, plan_memory_total(&r->host)};
  printf("memory       %12s %12s\n", gpu ? "GPU" : "", "host");
  for (int i = 0; i < 5; i++) {
    char a[32] = "", b[32];
    if (gpu) fmt_bytes(a, sizeof a, g[i]);
    fmt_bytes(b, sizeof b, h[i]);
    printf("  %-10s %12s %12s\n", rows[i], a, b);
  }
  char a[32] = "", b[32];
  if (gpu) fmt_bytes(a, sizeof a, gpu->memory_bytes);
  fmt_bytes(b, sizeof b, host->memory_bytes);
  printf("  %-10s %12s %12s%s\n", "available", a, b,
         r->host_fits ? "" : "  (the host part exceeds free RAM: it will page)");
}

static json_t *json_memory(const struct plan_memory *m) {
  return json_pack("{s:I,s:I,s:I,s:I,s:I}", "weights", (json_int_t)m->weights, "kv",
                   (json_int_t)m->kv, "scratch", (json_int_t)m->scratch, "margin",
                   (json_int_t)m->margin, "total", (json_int_t)plan_memory_total(m));
}

static json_t *json_device(const struct plan_device *d, const char *bandwidth_source) {
  json_t *o = json_pack("{s:s,s:I,s:f,s:s,s:f}", "name", d->name, "memory_bytes",
                        (json_int_t)d->memory_bytes, "bandwidth", d->bandwidth, "bandwidth_source",
                        bandwidth_source, "layer_overhead_s", d->layer_overhead_s);
  json_t *speeds = json_object();
  for (uint32_t t = 0; t < PLAN_TYPE_SLOTS; t++)
    if (d->type_speed[t] > 0)
      json_object_set_new(speeds, quant_type_name(t), json_real(d->type_speed[t]));
  json_object_set_new(o, "type_speed", speeds);
  return o;
}

static json_t *json_plan(const struct plan_result *r) {
  json_t *o = json_pack("{s:i,s:i,s:b,s:i,s:f,s:f,s:f,s:b}", "n_gpu_layers", (int)r->n_gpu_layers,
                        "gpu_blocks", (int)r->gpu_blocks, "output_on_gpu", r->output_on_gpu,
                        "max_fit", (int)r->max_fit, "tokens_per_s", r->tokens_per_s, "gpu_seconds",
                        r->gpu_seconds, "host_seconds", r->host_seconds, "host_fits", r->host_fits);
  json_object_set_new(o, "gpu", json_memory(&r->gpu));
  json_object_set_new(o, "host", json_memory(&r->host));
  return o;
}

/* ---- the command ------------------------------------------------------------------------------
 */

static int kv_type_from_name(const char *name, uint32_t *out) {
  if (!strcmp(name, "f16"))
    *out = QUANT_F16;
  else if (!strcmp(name, "q8_0"))
    *out = QUANT_Q8_0;
  else if (!strcmp(name, "q4_0"))
    *out = QUANT_Q4_0;
  else
    return AUG_EINVAL;
  return 0;
}

/* Every weight type the models hold, and the KV type (attention streams it too). */
static size_t collect_types(const struct plan_cli *c, const struct plan_model *m, uint32_t kv_type,
                            uint32_t *types) {
  bool seen[PLAN_TYPE_SLOTS] = {false};
  size_t n = 0;
  for (size_t s = 0; s <= c->n_siblings; s++) {
    const struct plan_model *x = s == 0 ? m : c->siblings[s - 1].shape;
    uint32_t list[2] = {x->output_type, kv_type};
    for (uint32_t i = 0; i < 2; i++)
      if (list[i] < PLAN_TYPE_SLOTS && !seen[list[i]]) seen[list[i]] = true, types[n++] = list[i];
    for (uint32_t il = 0; il < x->n_layer; il++)
      for (int t = 0; t < PLAN_TENSOR_COUNT; t++) {
        uint32_t ty = x->layers[il].type[t];
        if (ty < PLAN_TYPE_SLOTS && !seen[ty] && ty != QUANT_F32) seen[ty] = true, types[n++] = ty;
      }
  }
  return n;
}

int cli_cmd_plan(int argc, char **argv) {
  const char *model_path = NULL, *kv_name = "f16";
  uint64_t vram = 0;
  int64_t n_ctx = 4096, threads = 0, depth = 1024;
  double gpu_gbps = 0;
  bool json = false;
  const struct cli_option opts[] = {
      CLI_OPT_STRING("model", 'm', &model_path, "PATH", "GGUF model file"),
      CLI_OPT_BYTES("vram", 0, &vram, "SIZE",
                    "simulate a GPU with this much free memory (4G, 512M)"),
      CLI_OPT_INT("ctx", 'c', &n_ctx, "N", "context size in tokens (default 4096)", 1, 1 << 24),
      CLI_OPT_STRING("kv", 0, &kv_name, "TYPE", "KV cache type: f16 (default), q8_0, q4_0"),
      CLI_OPT_INT("depth", 0, &depth, "N", "tokens in the cache when speed is predicted (1024)", 0,
                  1 << 24),
      CLI_OPT_FLOAT("gpu-bandwidth", 0, &gpu_gbps, "GB/S",
                    "the GPU's bandwidth instead of the measured or assumed one", 0.001, 1e6),
      CLI_OPT_INT("threads", 't', &threads, "N", "CPU threads (default: physical cores)", 0, 1024),
      CLI_OPT_FLAG("json", 0, &json, "print one JSON object"),
  };
  const struct cli_args args = {
      opts, sizeof opts / sizeof opts[0],
      "plan -m MODEL [--vram SIZE] [--ctx N] [--kv f16|q8_0|q4_0] [--json]"};
  struct aug_err err = {0};
  size_t n_pos = 0;
  int rc = cli_args_parse(&args, argc, argv, NULL, 0, &n_pos, &err);
  if (rc == CLI_ARGS_HELP) {
    cli_args_usage(&args, stdout);
    return 0;
  }
  if (rc < 0) return cli_args_fail(&args, &err);
  if (!model_path) {
    aug_err_set(&err, AUG_EINVAL, "-m MODEL is required");
    return cli_args_fail(&args, &err);
  }
  struct plan_options opt = plan_options_default();
  if (kv_type_from_name(kv_name, &opt.kv_type)) {
    aug_err_set(&err, AUG_EINVAL, "--kv: '%s' is not f16, q8_0 or q4_0", kv_name);
    return cli_args_fail(&args, &err);
  }
  opt.n_ctx = (uint32_t)n_ctx;
  opt.decode_depth = (uint32_t)depth;

  int status = 1;
  struct model *model = NULL;
  struct plan_model *shape = malloc(sizeof *shape);
  struct plan_cli *c = calloc(1, sizeof *c);
  const struct backend_ops *cpu_ops = backend_cpu_ops(), *gpu_ops = NULL;
  struct backend *cpu = NULL, *gpu_be = NULL;
  json_t *root = NULL;
  if (!shape || !c) {
    fprintf(stderr, "augury plan: out of memory\n");
    goto done;
  }
  if (model_load(model_path, &model, &err) != 0 || plan_model_from_model(model, shape, &err) != 0) {
    fprintf(stderr, "augury plan: %s\n", err.msg);
    goto done;
  }
  c->model_path = model_path;
  stat(model_path, &c->model_stat);
  snprintf(c->arch, sizeof c->arch, "%s", shape->arch);
  c->n_layer = shape->n_layer;
  c->n_embd = shape->n_embd;
  find_siblings(c);
  uint32_t types[PLAN_TYPE_SLOTS];
  size_t n_types = collect_types(c, shape, opt.kv_type, types);

  /* The host: free RAM and the read benchmark, then the CPU backend's matvec (what decode on
   * the CPU actually streams at, below the read figure because it also computes). */
  char cpu_options[32] = "";
  if (threads > 0) snprintf(cpu_options, sizeof cpu_options, "threads=%lld", (long long)threads);
  if (cpu_ops->create(cpu_options[0] ? cpu_options : NULL, &cpu, &err) != 0) {
    fprintf(stderr, "augury plan: CPU backend: %s\n", err.msg);
    goto done;
  }
  int n_threads = threads > 0 ? (int)threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  struct plan_device host_read, host;
  if (plan_measure_host(n_threads, &host_read, &err) != 0 ||
      plan_measure_backend(cpu_ops, cpu, types, n_types, &host, &err) != 0) {
    fprintf(stderr, "augury plan: measuring the host: %s\n", err.msg);
    goto done;
  }
  host.memory_bytes = host_read.memory_bytes;
  host.is_host = true;
  cpu_ops->destroy(cpu);
  cpu = NULL;

  /* The GPU backend's device, if this build and machine have one. */
  struct plan_device measured = {0};
  bool have_gpu = false;
  char gpu_note[600] = "";
  struct aug_err gpu_err = {0};
  if (backend_find("vulkan", &gpu_ops, &gpu_err) == 0 &&
      gpu_ops->create(NULL, &gpu_be, &gpu_err) == 0 &&
      plan_measure_backend(gpu_ops, gpu_be, NULL, 0, &measured, &gpu_err) == 0)
    have_gpu = true;
  else
    snprintf(gpu_note, sizeof gpu_note, "no GPU measured (%s)", gpu_err.msg);
  /* A device no faster than the host (Mesa's lavapipe is the CPU) is not a GPU worth planning
   * for; the plan still uses it when it is the real device, and gets nothing from it. */
  bool gpu_is_fast = have_gpu && measured.bandwidth > 1.5 * host.bandwidth;
  /* Per-type speeds only matter for a device the plan will use at its own speed. */
  if (gpu_is_fast &&
      plan_measure_backend(gpu_ops, gpu_be, types, n_types, &measured, &gpu_err) != 0) {
    fprintf(stderr, "augury plan: measuring %s: %s\n", measured.name, gpu_err.msg);
    goto done;
  }

  if (gpu_be) gpu_ops->destroy(gpu_be);
  gpu_be = NULL;

  struct plan_device gpu = {0};
  bool use_gpu = false;
  const char *bw_source = "measured";
  if (vram > 0) {
    use_gpu = true;
    gpu.memory_bytes = vram;
    if (gpu_gbps > 0) {
      gpu.bandwidth = gpu_gbps * 1e9;
      bw_source = "given";
    } else if (gpu_is_fast) {
      gpu = measured;
      gpu.memory_bytes = vram;
    } else {
      gpu.bandwidth = PLAN_ASSUMED_GPU_BANDWIDTH;
      bw_source = "assumed";
    }
    char size[32];
    fmt_bytes(size, sizeof size, vram);
    snprintf(gpu.name, sizeof gpu.name, "simulated GPU, %.20s%s%.60s", size,
             gpu_is_fast ? " at the speed of " : "", gpu_is_fast ? measured.name : "");
    gpu.bandwidth_measured = !strcmp(bw_source, "measured");
  } else if (have_gpu) {
    use_gpu = true;
    gpu = measured;
    if (gpu_gbps > 0) {
      gpu.bandwidth = gpu_gbps * 1e9;
      bw_source = "given";
    }
  }

  struct plan_result plan, cpu_only;
  if (plan_choose(shape, &opt, use_gpu ? &gpu : NULL, &host, &plan, &err) != 0 ||
      plan_evaluate(shape, &opt, use_gpu ? &gpu : NULL, &host, 0, &cpu_only, &err) != 0) {
    fprintf(stderr, "augury plan: %s\n", err.msg);
    goto done;
  }
  for (size_t i = 0; i < c->n_siblings; i++)
    if (plan_choose(c->siblings[i].shape, &opt, use_gpu ? &gpu : NULL, &host, &c->siblings[i].plan,
                    &err) != 0) {
      fprintf(stderr, "augury plan: %s: %s\n", c->siblings[i].path, err.msg);
      goto done;
    }

  if (json) {
    root = json_pack("{s:s,s:s,s:s,s:i,s:I,s:i,s:s,s:i}", "model", model_path, "arch", shape->arch,
                     "quant", shape->quant, "n_layer", (int)shape->n_layer, "weight_bytes",
                     (json_int_t)plan_model_bytes(shape), "ctx", (int)opt.n_ctx, "kv_type", kv_name,
                     "decode_depth", (int)opt.decode_depth);
    json_object_set_new(root, "host", json_device(&host, "measured"));
    json_object_set_new(json_object_get(root, "host"), "read_bandwidth",
                        json_real(host_read.bandwidth));
    if (use_gpu) {
      json_t *g = json_device(&gpu, bw_source);
      json_object_set_new(g, "simulated", json_boolean(vram > 0));
      json_object_set_new(root, "gpu", g);
    } else {
      json_object_set_new(root, "gpu", json_null());
    }
    if (have_gpu) json_object_set_new(root, "measured_gpu", json_device(&measured, "measured"));
    json_object_set_new(root, "plan", json_plan(&plan));
    json_object_set_new(root, "cpu_only_tokens_per_s", json_real(cpu_only.tokens_per_s));
    json_t *alts = json_array();
    for (size_t i = 0; i < c->n_siblings; i++) {
      const struct sibling *s = &c->siblings[i];
      char text[512];
      plan_compare_text(shape, &plan, s->shape, &s->plan, text, sizeof text);
      json_t *a = json_pack("{s:s,s:s,s:I,s:f,s:s}", "path", s->path, "quant", s->shape->quant,
                            "weight_bytes", (json_int_t)plan_model_bytes(s->shape), "ratio",
                            s->plan.tokens_per_s / plan.tokens_per_s, "text", text);
      json_object_set_new(a, "plan", json_plan(&s->plan));
      json_array_append_new(alts, a);
    }
    json_object_set_new(root, "alternatives", alts);
    if (json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0) goto done;
    printf("\n");
    status = 0;
    goto done;
  }

  char b1[32], b2[32];
  const char *base = strrchr(model_path, '/');
  fmt_bytes(b1, sizeof b1, plan_model_bytes(shape));
  printf("model:     %s (%s, %s, %u blocks + head = %u layers, %s of weights)\n",
         base ? base + 1 : model_path, shape->arch, shape->quant[0] ? shape->quant : "?",
         shape->n_layer, shape->n_layer + 1, b1);
  fmt_bytes(b1, sizeof b1, plan_kv_bytes_per_token_layer(shape, opt.kv_type) * shape->n_layer);
  printf("context:   %u tokens, KV %s (%s per token), batch %u; speed at %u tokens in the cache\n",
         opt.n_ctx, kv_name, b1, opt.n_batch,
         opt.decode_depth < opt.n_ctx ? opt.decode_depth : opt.n_ctx);
  fmt_bytes(b1, sizeof b1, host.memory_bytes);
  printf("host:      %s, %s free; memory read %.1f GB/s (%d threads), decode matvec %.1f GB/s "
         "(measured)\n",
         host.name, b1, host_read.bandwidth / 1e9, n_threads, host.bandwidth / 1e9);
  if (have_gpu)
    printf("device:    %s, %s free; decode matvec %.1f GB/s (measured)%s\n", measured.name,
           (fmt_bytes(b2, sizeof b2, measured.memory_bytes), b2), measured.bandwidth / 1e9,
           gpu_is_fast ? "" : ": no faster than the host, a CPU implementation");
  else
    printf("device:    %s\n", gpu_note);
  if (use_gpu && vram > 0)
    printf("GPU:       %s; bandwidth %.0f GB/s (%s%s)\n", gpu.name, gpu.bandwidth / 1e9, bw_source,
           !strcmp(bw_source, "assumed") ? ": no GPU faster than the host here" : "");
  printf("\n");
  print_placement(&plan);
  print_memory(&plan, use_gpu ? &gpu : NULL, &host);
  printf("expected:  %.1f tokens/s decode (GPU %.1f ms + host %.1f ms per token); CPU only %.1f "
         "tokens/s",
         plan.tokens_per_s, plan.gpu_seconds * 1e3, plan.host_seconds * 1e3, cpu_only.tokens_per_s);
  if (use_gpu && plan.max_fit > plan.n_gpu_layers)
    printf("; up to %u layers would fit, but the GPU is no faster", plan.max_fit);
  printf("\n");
  if (c->n_siblings == 0) printf("other quants: none of this model beside it or in the HF cache\n");
  for (size_t i = 0; i < c->n_siblings; i++) {
    char text[512];
    plan_compare_text(shape, &plan, c->siblings[i].shape, &c->siblings[i].plan, text, sizeof text);
    printf("other quant: %s (%s)\n", text, c->siblings[i].path);
  }
  status = 0;

done:
  if (root) json_decref(root);
  if (cpu) cpu_ops->destroy(cpu);
  if (gpu_be) gpu_ops->destroy(gpu_be);
  if (c)
    for (size_t i = 0; i < c->n_siblings; i++)
      free(c->siblings[i].shape);
  free(c);
  free(shape);
  model_destroy(model);
  return status;
}
