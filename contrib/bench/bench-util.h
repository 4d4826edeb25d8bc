/* What bench-broker and bench-floor both need to measure a process from
 * outside or inside: clocks, /proc readers, a system-call counter and
 * percentiles. Benchmark code only; nothing here is linked into the broker.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC and CLOCK_REALTIME in ns. */
uint64_t bench_now_ns(void);
uint64_t bench_wall_ns(void);

/* utime + stime of a process (all its threads) in us, from /proc; -1 when
 * it cannot be read. */
int64_t bench_proc_cpu_us(pid_t pid);
/* A "VmXXX:" or "RssXXX:" field of /proc/PID/status in KiB; -1 if absent. */
long bench_proc_status_kb(pid_t pid, const char *field);

/* A counter of the system calls made by one thread (pid 0: the caller),
 * through the raw_syscalls:sys_enter tracepoint (perf_event_open). -1 when
 * the kernel does not allow it (no tracefs, perf_event_paranoid): the
 * figure is then reported as unknown. Close with close(). */
int bench_syscall_counter_open(pid_t pid);
/* The count so far; -1 when fd < 0 or the read fails. */
int64_t bench_syscall_counter_read(int fd);

/* The CPU time of one thread (pid 0: the caller) in ns, from the kernel's
 * task clock: exact where /proc/PID/stat counts 10 ms ticks. Read it with
 * bench_syscall_counter_read(); -1 when not allowed. */
int bench_task_clock_open(pid_t pid);

/* The p-th percentile (0..100) of n values, sorting them in place; 0 for
 * n == 0. */
uint64_t bench_percentile(uint64_t *values, size_t n, double p);

#endif
