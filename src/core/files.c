/* File helpers: whole-file reads, atomic writes, and the "never write onto the input" check. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model.h"

rotq_status rotq_read_file(const char *path, uint8_t **data, uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return rotq_fail(ROTQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rotq_fail(ROTQ_ERR_IO, "%s: not a regular file", path);
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory (%lld bytes)", path, (long long)st.st_size);
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(buf);
        return rotq_fail(ROTQ_ERR_IO, "%s: short read", path);
    }
    buf[got] = 0; /* convenient for text files */
    *data = buf;
    *size = got;
    return ROTQ_OK;
}

/* Resolves a path that may not exist yet: realpath of its folder + its last component. */
static bool resolve(const char *path, char *out) {
    if (realpath(path, out)) return true;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/') tmp[--len] = 0;
    char *slash = strrchr(tmp, '/');
    const char *base = slash ? slash + 1 : tmp;
    char dir[PATH_MAX];
    if (slash == tmp) snprintf(dir, sizeof dir, "/");
    else if (slash) { *slash = 0; snprintf(dir, sizeof dir, "%s", tmp); }
    else snprintf(dir, sizeof dir, ".");
    char rdir[PATH_MAX];
    if (!realpath(dir, rdir)) return false;
    if (snprintf(out, PATH_MAX, "%s/%s", strcmp(rdir, "/") ? rdir : "", base) >= PATH_MAX) return false;
    return true;
}

rotq_status rotq_path_check_distinct(const char *in, const char *out) {
    if (!in || !*in) return ROTQ_OK;
    char a[PATH_MAX], b[PATH_MAX];
    if (!resolve(in, a) || !resolve(out, b)) return ROTQ_OK; /* out's folder missing: the writer reports it */
    struct stat sa, sb;
    bool same = strcmp(a, b) == 0 ||
                (stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
    /* Writing into the input folder's model file, or a folder over the input file, is also refused. */
    size_t la = strlen(a);
    bool inside = strncmp(a, b, la) == 0 && b[la] == '/';
    size_t lb = strlen(b);
    bool contains = strncmp(b, a, lb) == 0 && a[lb] == '/';
    if (same || inside || contains)
        return rotq_fail(ROTQ_ERR_ARG, "refusing to write %s: it is (or overlaps) the input %s; rotq never modifies its input", out, in);
    return ROTQ_OK;
}

rotq_status rotq_write_file_atomic(const char *path, const void *data, uint64_t size) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp)
        return rotq_fail(ROTQ_ERR_ARG, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return rotq_fail(ROTQ_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(errno));
    const uint8_t *p = data;
    uint64_t left = size;
    while (left) {
        ssize_t w = write(fd, p, left > (1u << 30) ? (1u << 30) : left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return rotq_fail(ROTQ_ERR_IO, "%s: write failed: %s", path, strerror(e));
        }
        p += w;
        left -= (uint64_t)w;
    }
    fchmod(fd, 0644);
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return rotq_fail(ROTQ_ERR_IO, "%s: cannot flush: %s", path, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rotq_fail(ROTQ_ERR_IO, "%s: cannot rename temporary file into place: %s", path, strerror(e));
    }
    return ROTQ_OK;
}
