/* The backends compiled into this build, as a constant table (no registration state, no mutable
 * globals). Optional backends (Vulkan, CUDA) add their entry here when their CMake option builds
 * them; lookups refuse any table built against another ABI, naming both versions. */
#include <string.h>

#include "backends/backend.h"
#ifdef AUGURY_HAVE_VULKAN
#include "backends/vulkan/vulkan_backend.h"
#endif

typedef const struct backend_ops *(*backend_ops_getter)(void);

static const backend_ops_getter backend_table[] = {
    backend_cpu_ops,
#ifdef AUGURY_HAVE_VULKAN /* set on this file only, by CMake, when it builds backends/vulkan/ */
    backend_vulkan_ops,
#endif
};

size_t backend_count(void) {
  return sizeof backend_table / sizeof backend_table[0];
}

const struct backend_ops *backend_at(size_t index) {
  return index < backend_count() ? backend_table[index]() : NULL;
}

/* A table is usable when it was built against this header's ABI and is exactly the size this
 * header expects (slots only grow at the end, so a smaller table lacks slots we would call). */
int backend_check_abi(const struct backend_ops *ops, struct aug_err *err) {
  if (ops->abi_version != BACKEND_ABI_VERSION) {
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "backend '%s': abi_version %u does not match the host's %u", ops->name,
                       ops->abi_version, (unsigned)BACKEND_ABI_VERSION);
  }
  if (ops->struct_size != sizeof(struct backend_ops)) {
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "backend '%s': struct_size %u does not match the host's %zu", ops->name,
                       ops->struct_size, sizeof(struct backend_ops));
  }
  return 0;
}

int backend_find(const char *name, const struct backend_ops **out, struct aug_err *err) {
  *out = NULL;
  for (size_t i = 0; i < backend_count(); i++) {
    const struct backend_ops *ops = backend_at(i);
    if (name && !strcmp(ops->name, name)) {
      int rc = backend_check_abi(ops, err);
      if (rc) return rc;
      *out = ops;
      return 0;
    }
  }
  return aug_err_set(err, AUG_ENOTFOUND, "backend '%s' is not compiled into this build",
                     name ? name : "(null)");
}
