/* The Vectorscan (Hyperscan) anchor of `cargo bench --bench throughput`: how fast a
 * state-of-the-art multi-regex scanner reads the same corpus with the same rule regexes,
 * detecting only (no capture, no validation, no replacement, no output).
 *
 *   vectorscan PATTERNS CORPUS REPS
 *
 * PATTERNS holds one regex per line (the bench writes logveil's rule regexes there, with
 * named groups made plain). Each is first compiled alone: a regex Vectorscan cannot take
 * (unsupported syntax, too large) is counted and left out, never fatal. The rest are
 * compiled into one block-mode database. CORPUS is mapped into memory and scanned in
 * blocks of about 8 MiB that end at a newline, so no match spans two blocks and every line
 * is seen whole, as logveil sees it. The scan is repeated REPS times; the median wall time
 * of the scans alone (no compile, no file reading: the page cache is warm) is printed as
 *
 *   compiled=USED/TOTAL bytes=N matches=M seconds=S
 */
#define _GNU_SOURCE /* memrchr */
#include <hs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (8u << 20)

static int count_match(unsigned id, unsigned long long from, unsigned long long to,
                       unsigned flags, void *ctx) {
    (void)id; (void)from; (void)to; (void)flags;
    ++*(uint64_t *)ctx;
    return 0; /* keep scanning */
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s PATTERNS CORPUS REPS\n", argv[0]);
        return 2;
    }
    int reps = atoi(argv[3]);
    if (reps < 1) reps = 1;

    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 2; }
    size_t cap = 64, used = 0, total = 0;
    char **exprs = malloc(cap * sizeof *exprs);
    unsigned *ids = malloc(cap * sizeof *ids);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    while ((n = getline(&line, &line_cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        total++;
        hs_database_t *one = NULL;
        hs_compile_error_t *err = NULL;
        if (hs_compile(line, 0, HS_MODE_BLOCK, NULL, &one, &err) != HS_SUCCESS) {
            /* The reason only: the pattern text is the rule author's, but keep the output short. */
            fprintf(stderr, "vectorscan: pattern %zu left out: %s\n", total, err->message);
            hs_free_compile_error(err);
            continue;
        }
        hs_free_database(one);
        if (used == cap) {
            cap *= 2;
            exprs = realloc(exprs, cap * sizeof *exprs);
            ids = realloc(ids, cap * sizeof *ids);
        }
        exprs[used] = strdup(line);
        ids[used] = (unsigned)total;
        used++;
    }
    free(line);
    fclose(f);
    if (used == 0) { fprintf(stderr, "vectorscan: no pattern compiled\n"); return 1; }

    hs_database_t *db = NULL;
    hs_compile_error_t *err = NULL;
    if (hs_compile_multi((const char *const *)exprs, NULL, ids, (unsigned)used, HS_MODE_BLOCK,
                         NULL, &db, &err) != HS_SUCCESS) {
        fprintf(stderr, "vectorscan: database: %s\n", err->message);
        return 1;
    }
    hs_scratch_t *scratch = NULL;
    if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
        fprintf(stderr, "vectorscan: scratch allocation failed\n");
        return 1;
    }

    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) { perror(argv[2]); return 2; }
    struct stat st;
    if (fstat(fd, &st) != 0) { perror(argv[2]); return 2; }
    size_t len = (size_t)st.st_size;
    const char *data = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : "";
    if (data == MAP_FAILED) { perror("mmap"); return 2; }

    double *times = malloc((size_t)reps * sizeof *times);
    uint64_t matches = 0;
    for (int r = 0; r < reps; r++) {
        matches = 0;
        double t0 = now();
        size_t at = 0;
        while (at < len) {
            size_t end = at + BLOCK < len ? at + BLOCK : len;
            if (end < len) {
                const char *nl = memrchr(data + at, '\n', end - at);
                if (nl) end = (size_t)(nl - data) + 1;
            }
            if (hs_scan(db, data + at, (unsigned)(end - at), 0, scratch, count_match,
                        &matches) != HS_SUCCESS) {
                fprintf(stderr, "vectorscan: scan failed\n");
                return 1;
            }
            at = end;
        }
        times[r] = now() - t0;
    }
    qsort(times, (size_t)reps, sizeof *times, by_value);
    printf("compiled=%zu/%zu bytes=%zu matches=%llu seconds=%.6f\n", used, total, len,
           (unsigned long long)matches, times[reps / 2]);
    return 0;
}
