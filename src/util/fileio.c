/*
 * fileio.c - whole-file reads, atomic writes, paths.
 */
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"

air_status air_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return air_err(errno == ENOENT ? AIR_ERR_NOT_FOUND : AIR_ERR_IO, "cannot open %s: %s",
                       path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return air_err(AIR_ERR_IO, "%s is not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return air_err(AIR_ERR_NOMEM, "out of memory reading %s (%zu bytes)", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return air_err(AIR_ERR_IO, "reading %s at byte %zu: %s", path, got,
                           r == 0 ? "unexpected end of file" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return AIR_OK;
}

air_status air_write_file_atomic(const char *path, const void *data, size_t len) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 32);
    if (!tmp)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        air_status st = air_err(AIR_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            air_status st = air_err(AIR_ERR_IO, "writing %s: %s (is the disk full?)", tmp,
                                    strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return st;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        air_status st = air_err(AIR_ERR_IO, "flushing %s: %s", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    if (rename(tmp, path) != 0) {
        air_status st = air_err(AIR_ERR_IO, "renaming %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return AIR_OK;
}

int air_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

air_status air_mkdirs(const char *path) {
    char *p = strdup(path);
    if (!p)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                air_status st = air_err(AIR_ERR_IO, "cannot create folder %s: %s", p, strerror(errno));
                free(p);
                return st;
            }
            *s = c;
            if (c == 0)
                break;
        }
    }
    free(p);
    return AIR_OK;
}

char *air_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *r = malloc(la + lb + 2);
    if (!r)
        return NULL;
    memcpy(r, a, la);
    size_t n = la;
    if (n > 0 && r[n - 1] != '/')
        r[n++] = '/';
    memcpy(r + n, b, lb + 1);
    return r;
}
