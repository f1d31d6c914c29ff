/* The one definition of augury's version (semver) and of the LSP revision it implements. `augury
 * --version`, `augury version --json` and the editors' minimum-version checks read these; a
 * release changes AUGURY_VERSION here and nowhere else. A build may pass -DAUGURY_GIT_DESCRIBE=
 * "..." (git describe) to have it shown after the version. */
#ifndef AUGURY_CLI_VERSION_H
#define AUGURY_CLI_VERSION_H

#define AUGURY_VERSION "0.1.0"
#define AUGURY_LSP_VERSION "3.18"

#endif
