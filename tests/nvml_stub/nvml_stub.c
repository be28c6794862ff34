/*
 * A stand-in for libnvidia-ml.so.1 (NVML), written from NVML's documented API, for tests that
 * run the real nvidia-ml-py binding (pynvml) on machines without an NVIDIA GPU.
 *
 * Only what bench-driver and pynvml's wrappers of it touch is here: init/shutdown, the device
 * count and handles (by index and by UUID), name, UUID, index, memory (nvmlMemory_t and the
 * versioned nvmlMemory_v2_t), utilisation, the running compute processes (v1, v2 and v3, each
 * with NVML's two-call protocol), MIG mode and MIG device handles, the driver version and
 * nvmlErrorString. Return codes and struct layouts are NVML's.
 *
 * Driver age is chosen at build time, because pynvml finds functions with dlsym: a symbol an old
 * driver lacks must be missing from the library, so that pynvml fails exactly as it does there.
 *   (default)          a current driver: every function; v3 process entries are 24 bytes.
 *   -DSTUB_R535_EARLY  v3 process entries are 32 bytes (an extra usedGpuCcProtectedMemory), as
 *                      early R535 drivers wrote them while nvidia-ml-py reads 24-byte ones.
 *   -DSTUB_R470        before R510: no nvmlDeviceGetComputeRunningProcesses_v3 and no
 *                      nvmlDeviceGetMemoryInfo_v2.
 *   -DSTUB_R440        as R470, and no nvmlDeviceGetComputeRunningProcesses_v2 and no MIG.
 *
 * The scenario is a text file named by the environment variable BENCH_NVML_STUB, read at the
 * first nvmlInit of a process. One statement per line, `key=value` words (a value may be
 * "double quoted"), `#` starts a comment:
 *
 *   nvml driver=550.54.15 log=/tmp/calls init_error=DRIVER_NOT_LOADED
 *   gpu name="NVIDIA H100 80GB HBM3" uuid=GPU-1111 total_mib=81559 reserved_mib=530 base_mib=0
 *       util=40 mig=0|1 handle_error=NO_PERMISSION lost_file=/tmp/lost processes_error=...
 *       util_error=... block_file=/tmp/block
 *   process gpu=0 pid=1234 | pid_file=/tmp/pid  used_mib=2048|na  seen_file=/tmp/seen  any_pid=1
 *   mig gpu=0 uuid=MIG-5555 total_mib=9856
 *
 * A `gpu` line (kept on one line in the file) adds the next NVML index. `log` gets one line
 * "init PID" or "shutdown PID" per successful call. Without `mig=` the GPU is not MIG-capable
 * (nvmlDeviceGetMigMode: NOT_SUPPORTED). While `lost_file` exists every query on that GPU returns
 * GPU_IS_LOST. While `block_file` exists the process queries wait (having created
 * `<block_file>.blocked`). A process is listed while its pid is alive (not a zombie) unless
 * any_pid=1; `pid_file` is re-read on every query (missing: not listed); `seen_file` is created
 * when the entry was handed out. Device memory used = base_mib + the listed processes' memory;
 * nvmlMemory_t.used adds reserved_mib (NVML: "Sum of Reserved and Allocated"); nvmlMemory_v2_t
 * reports reserved separately and used without it.
 */

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_UNKNOWN 999

#define MIB (1ULL << 20)
#define NOT_AVAILABLE_ULL 0xFFFFFFFFFFFFFFFFULL
#define NOT_AVAILABLE_UINT 0xFFFFFFFFU
#define MAX_GPUS 16
#define MAX_MIGS 16
#define MAX_PROCESSES 64
#define TEXT 256

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

#define NVML_STRUCT_VERSION(data, ver) (unsigned int)(sizeof(nvml##data##_v##ver##_t) | ((ver) << 24U))
#define nvmlMemory_v2 NVML_STRUCT_VERSION(Memory, 2)

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

typedef struct { /* 16 bytes */
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct { /* 24 bytes: what nvidia-ml-py reads for v2 and v3 */
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;

typedef struct { /* 32 bytes: early R535's v3 entries */
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
    unsigned long long usedGpuCcProtectedMemory;
} nvmlProcessInfo_r535_t;

struct nvmlDevice_st {
    int index;  /* GPU index, or the parent's for a MIG device */
    int mig;    /* MIG slot + 1; 0 for a whole GPU */
};
typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct {
    char name[TEXT], uuid[TEXT], lost_file[TEXT], block_file[TEXT];
    unsigned long long total_mib, reserved_mib, base_mib;
    unsigned int util;
    int mig_mode; /* -1: not MIG-capable */
    nvmlReturn_t handle_error, processes_error, util_error;
} Gpu;

typedef struct {
    int gpu;
    unsigned int pid;
    char pid_file[TEXT], seen_file[TEXT];
    unsigned long long used_mib; /* NOT_AVAILABLE_ULL: "na" */
    int any_pid;
} Process;

typedef struct {
    int gpu;
    char uuid[TEXT];
    unsigned long long total_mib;
} Mig;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int refcount;
static int loaded; /* the scenario was read */
static char driver[TEXT] = "550.54.15", log_path[TEXT];
static nvmlReturn_t init_error;
static Gpu gpus[MAX_GPUS];
static int gpu_count;
static Process processes[MAX_PROCESSES];
static int process_count;
static Mig migs[MAX_MIGS];
static int mig_count;
static struct nvmlDevice_st handles[MAX_GPUS], mig_handles[MAX_MIGS];

static const struct { const char *name; nvmlReturn_t code; } error_names[] = {
    {"UNINITIALIZED", 1}, {"INVALID_ARGUMENT", 2}, {"NOT_SUPPORTED", 3}, {"NO_PERMISSION", 4},
    {"NOT_FOUND", 6}, {"INSUFFICIENT_SIZE", 7}, {"DRIVER_NOT_LOADED", 9}, {"TIMEOUT", 10},
    {"LIBRARY_NOT_FOUND", 12}, {"FUNCTION_NOT_FOUND", 13}, {"GPU_IS_LOST", 15},
    {"RESET_REQUIRED", 16}, {"ARGUMENT_VERSION_MISMATCH", 25}, {"UNKNOWN", 999},
};

static nvmlReturn_t error_code(const char *name) {
    for (size_t i = 0; i < sizeof error_names / sizeof error_names[0]; i++)
        if (strcmp(name, error_names[i].name) == 0) return error_names[i].code;
    return (nvmlReturn_t)atoi(name);
}

static int exists(const char *path) {
    struct stat st;
    return path[0] && stat(path, &st) == 0;
}

static void touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) close(fd);
}

static void log_call(const char *what) {
    if (!log_path[0]) return;
    char line[64];
    int n = snprintf(line, sizeof line, "%s %d\n", what, (int)getpid());
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    if (write(fd, line, (size_t)n) < 0) { /* nothing to do: the test will see it missing */ }
    close(fd);
}

static void copy(char *to, const char *from) {
    snprintf(to, TEXT, "%s", from);
}

/* Next `key=value` word of *line; false at the end. Values may be "double quoted". */
static int next_word(char **line, char *key, char *value) {
    char *p = *line;
    while (isspace((unsigned char)*p)) p++;
    if (!*p || *p == '#') return 0;
    size_t k = 0, v = 0;
    while (*p && *p != '=' && !isspace((unsigned char)*p) && k < TEXT - 1) key[k++] = *p++;
    key[k] = 0;
    if (*p == '=') p++;
    if (*p == '"') {
        p++;
        while (*p && *p != '"' && v < TEXT - 1) value[v++] = *p++;
        if (*p == '"') p++;
    } else {
        while (*p && !isspace((unsigned char)*p) && v < TEXT - 1) value[v++] = *p++;
    }
    value[v] = 0;
    *line = p;
    return 1;
}

static void set_gpu(Gpu *g, const char *key, const char *value) {
    if (!strcmp(key, "name")) copy(g->name, value);
    else if (!strcmp(key, "uuid")) copy(g->uuid, value);
    else if (!strcmp(key, "total_mib")) g->total_mib = strtoull(value, NULL, 10);
    else if (!strcmp(key, "reserved_mib")) g->reserved_mib = strtoull(value, NULL, 10);
    else if (!strcmp(key, "base_mib")) g->base_mib = strtoull(value, NULL, 10);
    else if (!strcmp(key, "util")) g->util = (unsigned int)atoi(value);
    else if (!strcmp(key, "mig")) g->mig_mode = atoi(value);
    else if (!strcmp(key, "handle_error")) g->handle_error = error_code(value);
    else if (!strcmp(key, "processes_error")) g->processes_error = error_code(value);
    else if (!strcmp(key, "util_error")) g->util_error = error_code(value);
    else if (!strcmp(key, "lost_file")) copy(g->lost_file, value);
    else if (!strcmp(key, "block_file")) copy(g->block_file, value);
}

static void set_process(Process *p, const char *key, const char *value) {
    if (!strcmp(key, "gpu")) p->gpu = atoi(value);
    else if (!strcmp(key, "pid")) p->pid = (unsigned int)strtoul(value, NULL, 10);
    else if (!strcmp(key, "pid_file")) copy(p->pid_file, value);
    else if (!strcmp(key, "seen_file")) copy(p->seen_file, value);
    else if (!strcmp(key, "any_pid")) p->any_pid = atoi(value);
    else if (!strcmp(key, "used_mib"))
        p->used_mib = strcmp(value, "na") ? strtoull(value, NULL, 10) : NOT_AVAILABLE_ULL;
}

static void set_mig(Mig *m, const char *key, const char *value) {
    if (!strcmp(key, "gpu")) m->gpu = atoi(value);
    else if (!strcmp(key, "uuid")) copy(m->uuid, value);
    else if (!strcmp(key, "total_mib")) m->total_mib = strtoull(value, NULL, 10);
}

static void parse_line(char *line) {
    char kind[TEXT], key[TEXT], value[TEXT];
    if (!next_word(&line, kind, value)) return;
    Gpu *g = NULL;
    Process *p = NULL;
    Mig *m = NULL;
    if (!strcmp(kind, "gpu") && gpu_count < MAX_GPUS) {
        g = &gpus[gpu_count];
        memset(g, 0, sizeof *g);
        g->mig_mode = -1;
        g->total_mib = 81920;
        snprintf(g->name, TEXT, "NVIDIA Stub GPU");
        snprintf(g->uuid, TEXT, "GPU-00000000-0000-0000-0000-%012d", gpu_count);
        handles[gpu_count] = (struct nvmlDevice_st){gpu_count, 0};
        gpu_count++;
    } else if (!strcmp(kind, "process") && process_count < MAX_PROCESSES) {
        p = &processes[process_count++];
        memset(p, 0, sizeof *p);
    } else if (!strcmp(kind, "mig") && mig_count < MAX_MIGS) {
        m = &migs[mig_count++];
        memset(m, 0, sizeof *m);
    }
    while (next_word(&line, key, value)) {
        if (g) set_gpu(g, key, value);
        else if (p) set_process(p, key, value);
        else if (m) set_mig(m, key, value);
        else if (!strcmp(kind, "nvml") && !strcmp(key, "driver")) copy(driver, value);
        else if (!strcmp(kind, "nvml") && !strcmp(key, "log")) copy(log_path, value);
        else if (!strcmp(kind, "nvml") && !strcmp(key, "init_error")) init_error = error_code(value);
    }
    if (m) mig_handles[m - migs] = (struct nvmlDevice_st){m->gpu, (int)(m - migs) + 1};
}

/* Read the scenario once per process; false when there is none (no driver). */
static int load_scenario(void) {
    if (loaded) return 1;
    const char *path = getenv("BENCH_NVML_STUB");
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f) return 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) parse_line(line);
    fclose(f);
    loaded = 1;
    return 1;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = load_scenario() ? init_error : NVML_ERROR_DRIVER_NOT_LOADED;
    if (ret == NVML_SUCCESS) {
        refcount++;
        log_call("init");
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = NVML_ERROR_UNINITIALIZED;
    if (refcount > 0) {
        refcount--;
        log_call("shutdown");
        ret = NVML_SUCCESS;
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
        case NVML_SUCCESS: return "Success";
        case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
        case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
        case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
        case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
        default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    if (!version || strlen(driver) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(version, driver);
    return NVML_SUCCESS;
}

/* The GPU behind *device*, or an error for a bad handle, a lost GPU, or no init. */
static nvmlReturn_t lookup(nvmlDevice_t device, Gpu **gpu) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    if (!device || device->index < 0 || device->index >= gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    *gpu = &gpus[device->index];
    return exists((*gpu)->lost_file) ? NVML_ERROR_GPU_IS_LOST : NVML_SUCCESS;
}

/* lookup(), and INVALID_ARGUMENT when the caller's output pointer *out* is NULL. */
static nvmlReturn_t lookup_out(nvmlDevice_t device, Gpu **gpu, const void *out) {
    nvmlReturn_t ret = lookup(device, gpu);
    return ret ? ret : out ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned int)gpu_count; /* NVML counts GPUs this process may not be able to open */
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= (unsigned int)gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    Gpu *g = &gpus[index];
    if (exists(g->lost_file)) return NVML_ERROR_GPU_IS_LOST;
    if (g->handle_error) return g->handle_error;
    *device = &handles[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    if (!refcount) return NVML_ERROR_UNINITIALIZED;
    if (!uuid || !device) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < gpu_count; i++)
        if (!strcmp(gpus[i].uuid, uuid)) return nvmlDeviceGetHandleByIndex_v2((unsigned int)i, device);
#ifndef STUB_R440
    for (int i = 0; i < mig_count; i++)
        if (!strcmp(migs[i].uuid, uuid)) {
            *device = &mig_handles[i];
            return NVML_SUCCESS;
        }
#endif
    return NVML_ERROR_NOT_FOUND;
}

static nvmlReturn_t copy_text(const char *text, char *out, unsigned int length) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(text) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, text);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    Gpu *g;
    nvmlReturn_t ret = lookup(device, &g);
    return ret ? ret : copy_text(g->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    Gpu *g;
    nvmlReturn_t ret = lookup(device, &g);
    if (ret) return ret;
    return copy_text(device->mig ? migs[device->mig - 1].uuid : g->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    Gpu *g;
    nvmlReturn_t ret = lookup_out(device, &g, index);
    if (ret) return ret;
    *index = (unsigned int)device->index;
    return NVML_SUCCESS;
}

/* The pid of process entry *p*, or 0 when it is not listed now (not alive, no pid file). */
static unsigned int listed_pid(const Process *p) {
    unsigned int pid = p->pid;
    if (p->pid_file[0]) {
        FILE *f = fopen(p->pid_file, "r");
        if (!f) return 0;
        if (fscanf(f, "%u", &pid) != 1) pid = 0;
        fclose(f);
    }
    if (!pid || p->any_pid) return pid;
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = 0;
    char *end = strrchr(stat, ')');
    return end && end[1] == ' ' && end[2] != 'Z' && end[2] != 'X' ? pid : 0;
}

/* The processes of *device* now: pids and memory (bytes or NOT_AVAILABLE_ULL). */
static int listed(nvmlDevice_t device, unsigned int *pids, unsigned long long *used, const Process **from) {
    int n = 0;
    for (int i = 0; i < process_count; i++) {
        const Process *p = &processes[i];
        unsigned int pid = p->gpu == device->index ? listed_pid(p) : 0;
        if (!pid) continue;
        pids[n] = pid;
        used[n] = p->used_mib == NOT_AVAILABLE_ULL ? NOT_AVAILABLE_ULL : p->used_mib * MIB;
        from[n++] = p;
    }
    return n;
}

static unsigned long long allocated_bytes(nvmlDevice_t device, const Gpu *g) {
    unsigned int pids[MAX_PROCESSES];
    unsigned long long used[MAX_PROCESSES], sum = g->base_mib * MIB;
    const Process *from[MAX_PROCESSES];
    int n = listed(device, pids, used, from);
    for (int i = 0; i < n; i++)
        if (used[i] != NOT_AVAILABLE_ULL) sum += used[i];
    return sum;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    Gpu *g;
    nvmlReturn_t ret = lookup_out(device, &g, memory);
    if (ret) return ret;
    memory->total = g->total_mib * MIB;
    memory->used = g->reserved_mib * MIB + allocated_bytes(device, g);
    memory->free = memory->total > memory->used ? memory->total - memory->used : 0;
    return NVML_SUCCESS;
}

#if !defined(STUB_R470) && !defined(STUB_R440)
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    Gpu *g;
    nvmlReturn_t ret = lookup_out(device, &g, memory);
    if (ret) return ret;
    if (memory->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    memory->total = g->total_mib * MIB;
    memory->reserved = g->reserved_mib * MIB;
    memory->used = allocated_bytes(device, g);
    unsigned long long taken = memory->reserved + memory->used;
    memory->free = memory->total > taken ? memory->total - taken : 0;
    return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    Gpu *g;
    nvmlReturn_t ret = lookup_out(device, &g, utilization);
    if (ret) return ret;
    if (g->util_error) return g->util_error;
    utilization->gpu = g->util;
    utilization->memory = g->util / 2;
    return NVML_SUCCESS;
}

static void wait_while_blocked(const Gpu *g) {
    if (!exists(g->block_file)) return;
    char flag[TEXT + 16];
    snprintf(flag, sizeof flag, "%s.blocked", g->block_file);
    touch(flag);
    struct timespec pause = {0, 2000000};
    while (exists(g->block_file)) nanosleep(&pause, NULL);
}

enum layout { V1 = 16, V2 = 24, R535 = 32 };

static void write_entry(char *infos, int i, enum layout layout, unsigned int pid, unsigned long long used) {
    if (layout == V1) {
        nvmlProcessInfo_v1_t *e = (nvmlProcessInfo_v1_t *)infos + i;
        *e = (nvmlProcessInfo_v1_t){pid, used};
    } else if (layout == V2) {
        nvmlProcessInfo_v2_t *e = (nvmlProcessInfo_v2_t *)infos + i;
        *e = (nvmlProcessInfo_v2_t){pid, used, NOT_AVAILABLE_UINT, NOT_AVAILABLE_UINT};
    } else {
        nvmlProcessInfo_r535_t *e = (nvmlProcessInfo_r535_t *)infos + i;
        *e = (nvmlProcessInfo_r535_t){pid, used, NOT_AVAILABLE_UINT, NOT_AVAILABLE_UINT, 0};
    }
}

/* NVML's two-call protocol: *count = 0 and infos = NULL asks for the count (INSUFFICIENT_SIZE and
 * the count, or SUCCESS when there are none); then a large enough array is filled. */
static nvmlReturn_t running_processes(nvmlDevice_t device, unsigned int *count, void *infos, enum layout layout) {
    Gpu *g;
    nvmlReturn_t ret = lookup(device, &g);
    if (ret) return ret;
    if (g->processes_error) return g->processes_error;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    wait_while_blocked(g);
    unsigned int pids[MAX_PROCESSES];
    unsigned long long used[MAX_PROCESSES];
    const Process *from[MAX_PROCESSES];
    int n = listed(device, pids, used, from);
    if (*count < (unsigned int)n) {
        *count = (unsigned int)n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    *count = (unsigned int)n;
    if (n && !infos) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < n; i++) {
        write_entry(infos, i, layout, pids[i], used[i]);
        if (from[i]->seen_file[0]) touch(from[i]->seen_file);
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_v1_t *infos) {
    return running_processes(device, count, infos, V1);
}

#ifndef STUB_R440
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_v2_t *infos) {
    return running_processes(device, count, infos, V2);
}
#endif

#if !defined(STUB_R470) && !defined(STUB_R440)
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, void *infos) {
#ifdef STUB_R535_EARLY
    return running_processes(device, count, infos, R535);
#else
    return running_processes(device, count, infos, V2);
#endif
}
#endif

#ifndef STUB_R440
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    Gpu *g;
    nvmlReturn_t ret = lookup_out(device, &g, pending ? current : NULL);
    if (ret) return ret;
    if (g->mig_mode < 0) return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = (unsigned int)g->mig_mode;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned int *is_mig) {
    Gpu *g;
    nvmlReturn_t ret = lookup_out(device, &g, is_mig);
    if (ret) return ret;
    *is_mig = device->mig != 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t mig, nvmlDevice_t *device) {
    Gpu *g;
    nvmlReturn_t ret = lookup_out(mig, &g, device);
    if (ret) return ret;
    if (!mig->mig) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &handles[mig->index];
    return NVML_SUCCESS;
}
#endif
