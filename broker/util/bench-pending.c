/* bench-pending: what the pending-request machinery costs.
 *
 *     bench-pending [in-flight]        (default 100000)
 *
 * Prints ns per operation for UUIDs, the id table and the timer heap,
 * bytes per in-flight request, and a run of 1M requests that all time out
 * through one timer_queue on a real libuv loop. Not a test: it checks its
 * own results only to refuse printing figures for wrong work.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "common/minheap.h"
#include "util/idtable.h"
#include "util/timerqueue.h"
#include "util/uuid.h"

#define EXPIRE_RUN 1000000

static uint64_t rng_state = 1;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Bytes handed out by malloc, counting the big blocks it mmaps. */
static size_t heap_in_use(void)
{
    struct mallinfo2 info = mallinfo2();

    return info.uordblks + info.hblkhd;
}

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "bench-pending: %s\n", what);
    exit(1);
}

static void report(const char *what, double ns, size_t ops)
{
    printf("  %-44s %8.1f ns/op  (%zu ops)\n", what, ns / (double)ops, ops);
}

static void shuffle(size_t *order, size_t n)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng_next() % (i + 1), t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
}

static void bench_uuid(size_t n, uint8_t (*ids)[UUID_LEN])
{
    char(*text)[UUID_STR_LEN + 1] = malloc(n * sizeof(*text));
    uint8_t back[UUID_LEN];
    double t;

    if (!text)
        die("out of memory");
    memset(text, 0, n * sizeof(*text)); /* page faults out of the timing */
    printf("uuid\n");
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        if (uuid_generate_v4(ids[i]) < 0)
            die("getrandom failed");
    }
    report("uuid_generate_v4", now_ns() - t, n);
    t = now_ns();
    for (size_t i = 0; i < n; i++)
        uuid_format(ids[i], text[i]);
    report("uuid_format", now_ns() - t, n);
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        if (uuid_parse(text[i], UUID_STR_LEN, back) < 0 || memcmp(back, ids[i], UUID_LEN))
            die("uuid_parse mismatch");
    }
    report("uuid_parse", now_ns() - t, n);
    free(text);
}

static void bench_idtable(size_t n, uint8_t (*ids)[UUID_LEN])
{
    struct idtable *table;
    struct idtable_entry **entries = malloc(n * sizeof(*entries));
    size_t *order = malloc(n * sizeof(*order));
    uint8_t(*unknown)[UUID_LEN] = malloc(n * sizeof(*unknown));
    struct idtable_stats stats;
    size_t before, after;
    double t;

    if (!entries || !order || !unknown)
        die("out of memory");
    memset(entries, 0, n * sizeof(*entries));
    for (size_t i = 0; i < n; i++)
        uuid_generate_v4(unknown[i]);
    printf("idtable, %zu in flight\n", n);
    before = heap_in_use();
    if (idtable_new(&table, n) < 0)
        die("idtable_new failed");
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        if (idtable_insert(table, ids[i], &entries[i]) < 0)
            die("insert failed");
    }
    report("insert, cold (growing)", now_ns() - t, n);
    after = heap_in_use();
    idtable_stats(table, &stats);

    shuffle(order, n);
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        if (idtable_find(table, ids[order[i]]) != entries[order[i]])
            die("find mismatch");
    }
    report("find, hit (random order)", now_ns() - t, n);
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        if (idtable_find(table, unknown[i]))
            die("find of an unknown id hit");
    }
    report("find, miss (unknown id)", now_ns() - t, n);
    t = now_ns();
    for (size_t i = 0; i < n; i++)
        idtable_remove(table, entries[order[i]]);
    report("remove (random order)", now_ns() - t, n);
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        if (idtable_insert(table, ids[i], &entries[i]) < 0)
            die("insert failed");
    }
    report("insert, warm (free list)", now_ns() - t, n);
    t = now_ns();
    for (size_t k = 0; k < 1000000; k++) {
        size_t i = rng_next() % n;

        idtable_remove(table, entries[i]);
        if (idtable_insert(table, unknown[i], &entries[i]) < 0)
            die("insert failed");
        memcpy(ids[i], unknown[i], UUID_LEN);
        uuid_generate_v4(unknown[i]);
    }
    report("remove + insert + uuid, steady state", now_ns() - t, 1000000);
    printf("  memory: %.1f bytes/entry by malloc accounting, %.1f by the table's own count\n",
           (double)(after - before) / (double)n, (double)stats.bytes / (double)n);
    printf("          (%zu index slots of %zu bytes, %zu-byte entries, longest probe %zu)\n",
           stats.slots, sizeof(uint32_t) + sizeof(void *), sizeof(struct idtable_entry),
           stats.max_probe);
    idtable_free(table);
    free(unknown);
    free(order);
    free(entries);
}

struct pending {
    struct timer_node timer;
};

static void bench_timer_heap(void)
{
    enum { N = EXPIRE_RUN };
    struct pending *items = malloc(N * sizeof(*items));
    struct minheap heap, *hp = &heap;
    uint64_t last = 0;
    double t;

    if (!items)
        die("out of memory");
    minheap_init(hp);
    printf("minheap, %d nodes (pure, no loop)\n", N);
    t = now_ns();
    for (size_t i = 0; i < N; i++) {
        timer_node_init(&items[i].timer);
        if (minheap_add(hp, &items[i].timer.heap, rng_next() % 30000) < 0)
            die("heap add failed");
    }
    report("add, random deadline", now_ns() - t, N);
    t = now_ns();
    for (size_t i = 0; i < N; i++) {
        struct minheap_node *node = minheap_peek(hp);
        uint64_t key = node ? minheap_key(hp, node) : 0;

        if (!node || minheap_pop(hp) != node || key < last)
            die("heap order broken");
        last = key;
    }
    report("pop", now_ns() - t, N);
    /* Deadlines that mostly arrive in order, as request timeouts do. */
    t = now_ns();
    for (size_t i = 0; i < N; i++) {
        if (minheap_add(hp, &items[i].timer.heap, 30000 + i / 100) < 0)
            die("heap add failed");
    }
    report("add, ascending deadline", now_ns() - t, N);
    t = now_ns();
    for (size_t i = 0; i < N; i += 2)
        minheap_remove(hp, &items[(i * 7919) % N].timer.heap);
    report("remove from the middle", now_ns() - t, N / 2);
    minheap_destroy(hp);
    free(items);
}

/* --- the whole pending table: id + entry + deadline, on a real loop --- */

struct expire_run {
    struct idtable *table;
    uint64_t loop_start;
    size_t expired;
    size_t ticks; /* distinct uv_now values seen: roughly the dispatches */
    uint64_t last_tick;
    uint64_t max_late_ms;
};

static void on_expire(struct timer_node *node, void *userdata)
{
    struct expire_run *run = userdata;
    struct idtable_entry *entry = container_of(node, struct idtable_entry, timer);
    uint64_t now = uv_now(uv_default_loop());
    /* Late compared with when it could have fired at the earliest. */
    uint64_t due = node->deadline > run->loop_start ? node->deadline : run->loop_start;

    if (now - due > run->max_late_ms)
        run->max_late_ms = now - due;
    if (now != run->last_tick) {
        run->ticks++;
        run->last_tick = now;
    }
    idtable_remove(run->table, entry);
    run->expired++;
}

static void bench_expire_run(void)
{
    struct expire_run run = {0};
    struct timer_queue *queue;
    uv_loop_t *loop = uv_default_loop();
    uint8_t id[UUID_LEN];
    size_t before, peak;
    double t, cpu;

    printf("pending table, %d requests: uuid + insert + arm, then all expire on one uv timer\n",
           EXPIRE_RUN);
    before = heap_in_use();
    if (idtable_new(&run.table, EXPIRE_RUN) < 0 ||
        timer_queue_new(&queue, loop, on_expire, &run) < 0)
        die("out of memory");
    uv_update_time(loop);
    t = now_ns();
    for (size_t i = 0; i < EXPIRE_RUN; i++) {
        struct idtable_entry *entry;

        if (uuid_generate_v4(id) < 0 || idtable_insert(run.table, id, &entry) < 0)
            die("insert failed");
        /* Spread over 2 s past the start: those due before the loop runs
         * come in one big batch, the rest in many small ones. */
        if (timer_queue_add(queue, &entry->timer, timer_queue_deadline_in(queue, i % 2000)) < 0)
            die("arm failed");
    }
    report("uuid + idtable_insert + timer_queue_add", now_ns() - t, EXPIRE_RUN);
    peak = heap_in_use();
    printf("  memory: %.1f bytes per in-flight request (table + timer queue)\n",
           (double)(peak - before) / EXPIRE_RUN);
    uv_update_time(loop);
    run.loop_start = uv_now(loop);
    t = now_ns();
    cpu = cpu_ns();
    uv_run(loop, UV_RUN_DEFAULT);
    cpu = cpu_ns() - cpu;
    t = now_ns() - t;
    if (run.expired != EXPIRE_RUN || idtable_count(run.table) != 0)
        die("not everything expired");
    report("expire: pop + callback + idtable_remove (CPU)", cpu, EXPIRE_RUN);
    printf("  loop ran %.1f ms wall over %zu timer ticks; latest fire %llu ms late\n", t / 1e6,
           run.ticks, (unsigned long long)run.max_late_ms);
    timer_queue_close(queue);
    uv_run(loop, UV_RUN_DEFAULT);
    idtable_free(run.table);
    if (uv_loop_close(loop) != 0)
        die("loop did not close");
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    uint8_t(*ids)[UUID_LEN];
    struct rusage usage;

    if (n < 2 || n > IDTABLE_MAX_LIMIT)
        die("usage: bench-pending [in-flight, 2..2^28]");
    ids = malloc(n * sizeof(*ids));
    if (!ids)
        die("out of memory");
    bench_uuid(n, ids);
    bench_idtable(n, ids);
    bench_timer_heap();
    bench_expire_run();
    getrusage(RUSAGE_SELF, &usage);
    printf("peak RSS of the whole run: %ld KiB\n", usage.ru_maxrss);
    free(ids);
    return 0;
}
