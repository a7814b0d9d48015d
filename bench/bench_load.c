/* Load-memory benchmark: loads a model, touches every weight, and reports anonymous (copied) vs
 * file-backed resident memory, against a baseline that reads the same file into malloc'd memory.
 * usage: bench_load MODEL [RAWFILE]   (RAWFILE: the file the baseline reads; default MODEL) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/model.h"

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) v = atol(line + strlen(key) + 1);
    if (f) fclose(f);
    return v;
}

static double touch(const void *p, uint64_t n) {
    const uint8_t *b = p;
    double s = 0;
    for (uint64_t i = 0; i < n; i += 4096) s += b[i];
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: bench_load MODEL [RAWFILE]\n"); return 2; }
    const char *raw = argc > 2 ? argv[2] : argv[1];
    struct stat st;
    if (stat(raw, &st) != 0) { perror(raw); return 1; }
    pid_t pid = fork();
    if (pid == 0) { /* baseline in a child so its memory does not count for rotq */
        uint8_t *data; uint64_t size;
        if (rotq_read_file(raw, &data, &size) != ROTQ_OK) { fprintf(stderr, "%s\n", rotq_last_error()); _exit(1); }
        double s = touch(data, size);
        printf("baseline read-into-memory: file %.1f MB, RssAnon %.1f MB, VmHWM %.1f MB (checksum %.0f)\n", size / 1e6,
               status_kb("RssAnon:") / 1e3, status_kb("VmHWM:") / 1e3, s);
        fflush(stdout); /* _exit skips stdio's flush */
        _exit(0);
    }
    int wst;
    waitpid(pid, &wst, 0);
    rotq_model *m;
    if (rotq_model_load(argv[1], NULL, &m) != ROTQ_OK) { fprintf(stderr, "%s\n", rotq_last_error()); return 1; }
    uint64_t owned = 0, mapped = 0;
    double s = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        s += touch(m->tensors[i].data, m->tensors[i].nbytes);
        if (m->tensors[i].owned) owned += m->tensors[i].nbytes; else mapped += m->tensors[i].nbytes;
    }
    printf("rotq load + touch all:     tensors mapped %.1f MB, copied %.1f MB, RssAnon %.1f MB, RssFile %.1f MB, VmHWM %.1f MB (checksum %.0f)\n",
           mapped / 1e6, owned / 1e6, status_kb("RssAnon:") / 1e3, status_kb("RssFile:") / 1e3, status_kb("VmHWM:") / 1e3, s);
    rotq_model_free(m);
    return 0;
}
