#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tu_failures, tu_checks;
static char tmpdir[256];

const char *tu_shared(const char *rel) {
    static char path[4096];
    const char *root = getenv("ROTQ_SHARED");
    snprintf(path, sizeof path, "%s/%s", root ? root : "../shared", rel);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "skip: shared data %s is absent\n", path);
        return NULL;
    }
    return path;
}

const char *tu_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/rotq-test-XXXXXX");
        if (!mkdtemp(tmpdir)) { perror("mkdtemp"); exit(1); }
    }
    return tmpdir;
}

int tu_finish(const char *name) {
    if (tmpdir[0]) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    }
    printf("%s: %d checks, %d failed\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}
