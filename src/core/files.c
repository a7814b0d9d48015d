/* File helpers: whole-file reads, atomic writes, and the "never write onto the input" check. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/files.h"
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

/* path without trailing slashes ("out/" names out; "/" stays "/"). */
static void strip_slashes(const char *path, char out[PATH_MAX]) {
    snprintf(out, PATH_MAX, "%s", path);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = 0;
}

/* "dir" and "base" of a path that may not exist yet ("out/" names the folder out). */
static void split_path(const char *path, char dir[PATH_MAX], char base[PATH_MAX]) {
    char tmp[PATH_MAX];
    strip_slashes(path, tmp);
    char *slash = strrchr(tmp, '/');
    if (!slash) { snprintf(dir, PATH_MAX, "."); snprintf(base, PATH_MAX, "%s", tmp); return; }
    snprintf(base, PATH_MAX, "%s", slash + 1);
    if (slash == tmp) snprintf(dir, PATH_MAX, "/");
    else { *slash = 0; snprintf(dir, PATH_MAX, "%s", tmp); }
}

/* Resolves a path that may not exist yet: realpath of its folder + its last component. */
static bool resolve(const char *path, char *out) {
    if (realpath(path, out)) return true;
    char dir[PATH_MAX], base[PATH_MAX], rdir[PATH_MAX];
    split_path(path, dir, base);
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

/* ---- cancellation --------------------------------------------------------------------------- */

static volatile sig_atomic_t cancel_flag;

void rotq_cancel(void) { cancel_flag = 1; }
bool rotq_cancel_requested(void) { return cancel_flag != 0; }

rotq_status rotq_check_cancel(const char *what) {
    if (!cancel_flag) return ROTQ_OK;
    return rotq_fail(ROTQ_ERR_CANCELLED, "%s: stopped on request (a signal); temporaries removed", what);
}

/* ---- the output policy ----------------------------------------------------------------------- */

static const char *kind_of(mode_t m) {
    return S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

rotq_status rotq_output_target_ok(const char *path, rotq_output_kind kind) {
    if (!path || !*path) return rotq_fail(ROTQ_ERR_ARG, "empty output path");
    char clean[PATH_MAX];
    strip_slashes(path, clean);
    struct stat st;
    if (lstat(clean, &st) != 0) return ROTQ_OK; /* new: the folder check comes with the write */
    if (S_ISLNK(st.st_mode)) {
        char to[PATH_MAX];
        ssize_t k = readlink(clean, to, sizeof to - 1);
        to[k > 0 ? k : 0] = 0;
        return rotq_fail(ROTQ_ERR_ARG, "%s: is a symbolic link (to %s); rotq does not write through links, give the target's own path", clean, to);
    }
    if (kind == ROTQ_OUTPUT_FOLDER && !S_ISDIR(st.st_mode))
        return rotq_fail(ROTQ_ERR_ARG, "%s: exists and is not a folder (%s); refusing to replace it", clean, S_ISREG(st.st_mode) ? "a file" : kind_of(st.st_mode));
    if (kind == ROTQ_OUTPUT_FILE && S_ISDIR(st.st_mode)) return rotq_fail(ROTQ_ERR_ARG, "%s: is a folder; a file goes there", clean);
    if (kind == ROTQ_OUTPUT_FILE && !S_ISREG(st.st_mode))
        return rotq_fail(ROTQ_ERR_ARG, "%s: is %s; rotq writes only regular files (where a command offers it, - is standard output)", clean, kind_of(st.st_mode));
    return ROTQ_OK;
}

/* A folder rotq may replace: it holds config.json and only regular files (what a model folder is). */
static rotq_status replaceable_folder(const char *dir, bool overwrite) {
    DIR *d = opendir(dir);
    if (!d) return rotq_fail(ROTQ_ERR_IO, "%s: cannot read folder: %s", dir, strerror(errno));
    bool empty = true, config = false;
    char odd[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        empty = false;
        if (!strcmp(e->d_name, "config.json")) config = true;
        char p[PATH_MAX];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p && lstat(p, &st) == 0 && !S_ISREG(st.st_mode) && !odd[0])
            snprintf(odd, sizeof odd, "%s", e->d_name);
    }
    closedir(d);
    if (empty) return ROTQ_OK;
    if (!overwrite) return rotq_fail(ROTQ_ERR_ARG, "%s: folder exists and is not empty; refusing to replace it (--force replaces a model folder)", dir);
    if (odd[0]) return rotq_fail(ROTQ_ERR_ARG, "%s: holds %s, which is not a regular file; refusing to replace a folder that is not a model folder", dir, odd);
    if (!config) return rotq_fail(ROTQ_ERR_ARG, "%s: has no config.json, so it is not a model folder; refusing to replace it", dir);
    return ROTQ_OK;
}

rotq_status rotq_output_check(const char *path, rotq_output_kind kind, bool overwrite, const char *input) {
    ROTQ_TRY(rotq_output_target_ok(path, kind));
    ROTQ_TRY(rotq_path_check_distinct(input, path));
    char dir[PATH_MAX], base[PATH_MAX];
    split_path(path, dir, base);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return rotq_fail(ROTQ_ERR_ARG, "%s: the folder %s does not exist", path, dir);
    if (access(dir, W_OK) != 0) return rotq_fail(ROTQ_ERR_ARG, "%s: the folder %s is not writable", path, dir);
    if (stat(path, &st) != 0) return ROTQ_OK;
    if (kind == ROTQ_OUTPUT_FOLDER) return replaceable_folder(path, overwrite);
    if (!overwrite) return rotq_fail(ROTQ_ERR_ARG, "%s: exists; refusing to replace it (--force replaces it)", path);
    return ROTQ_OK;
}

/* ---- temporaries ----------------------------------------------------------------------------- */

void rotq_tmp_remove_folder(const char *tmp) {
    DIR *d = opendir(tmp);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[PATH_MAX];
            if (snprintf(p, sizeof p, "%s/%s", tmp, e->d_name) < (int)sizeof p) unlink(p);
        }
        closedir(d);
    }
    rmdir(tmp);
}

/* Removes BASE.tmp-PID-XXXXXX entries in dir whose process no longer exists. */
static void sweep_stale(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d) return;
    size_t bl = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp-", 5) != 0) continue;
        char *end;
        long pid = strtol(n + bl + 5, &end, 10);
        if (end == n + bl + 5 || *end != '-' || strlen(end + 1) != 6 || pid <= 0) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, n) >= (int)sizeof p) continue;
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) rotq_tmp_remove_folder(p);
        else if (S_ISREG(st.st_mode)) unlink(p);
        else continue;
        rotq_log(ROTQ_LOG_WARN, "removed %s, a temporary left by an interrupted rotq run (process %ld no longer exists)", p, pid);
    }
    closedir(d);
}

rotq_status rotq_tmp_create(const char *path, bool folder, char tmp[PATH_MAX], int *fd) {
    char dir[PATH_MAX], base[PATH_MAX];
    split_path(path, dir, base);
    sweep_stale(dir, base);
    char clean[PATH_MAX];
    strip_slashes(path, clean);
    if (snprintf(tmp, PATH_MAX, "%s.tmp-%ld-XXXXXX", clean, (long)getpid()) >= PATH_MAX)
        return rotq_fail(ROTQ_ERR_ARG, "%s: path too long", path);
    *fd = -1;
    if (folder) {
        if (!mkdtemp(tmp)) return rotq_fail(ROTQ_ERR_IO, "%s: cannot create a temporary folder beside it: %s", path, strerror(errno));
        chmod(tmp, 0755); /* mkdtemp makes it 0700; the output should look like any other folder */
        return ROTQ_OK;
    }
    *fd = mkstemp(tmp);
    if (*fd < 0) return rotq_fail(ROTQ_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
    return ROTQ_OK;
}

rotq_status rotq_write_file_atomic(const char *path, const void *data, uint64_t size) {
    ROTQ_TRY(rotq_output_target_ok(path, ROTQ_OUTPUT_FILE));
    char tmp[PATH_MAX];
    int fd;
    ROTQ_TRY(rotq_tmp_create(path, false, tmp, &fd));
    const uint8_t *p = data;
    uint64_t left = size;
    while (left) {
        rotq_status c = rotq_check_cancel(path);
        ssize_t w = c != ROTQ_OK ? -1 : write(fd, p, left > (1u << 28) ? (1u << 28) : left);
        if (w < 0) {
            if (c == ROTQ_OK && errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return c != ROTQ_OK ? c : rotq_fail(ROTQ_ERR_IO, "%s: write failed: %s", path, strerror(e));
        }
        p += w;
        left -= (uint64_t)w;
    }
    fchmod(fd, 0644);
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return rotq_fail(ROTQ_ERR_IO, "%s: cannot flush: %s", path, strerror(errno));
    }
    rotq_status c = rotq_check_cancel(path);
    if (c != ROTQ_OK) {
        unlink(tmp);
        return c;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rotq_fail(ROTQ_ERR_IO, "%s: cannot rename temporary file into place: %s", path, strerror(e));
    }
    return ROTQ_OK;
}
