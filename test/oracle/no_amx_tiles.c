// no_amx_tiles PROGRAM [ARGS...]: runs PROGRAM as on a Linux that does not grant the AMX tile state.
//
// Why: on a host with AMX, llama.cpp's best CPU backend (the sapphirerapids variant) asks Linux for
// the tile state (arch_prctl ARCH_REQ_XCOMP_PERM) and, when granted, routes F16 and some quantized
// matmuls through its AMX buffer type: other kernels, other rounding, and an abort in the scheduler
// on deepseek2 F16 files. moerun's logits are held to llama.cpp's CPU kernels, the ones every other
// x86 host runs, so the oracle runs llama.cpp with that request refused (EPERM), exactly as
// llama.cpp sees it on a kernel without AMX support.
//
// How: a seccomp filter (inherited across execve) that fails arch_prctl(ARCH_REQ_XCOMP_PERM, ...)
// and allows every other system call. The launcher checks that the request is refused before it
// execs PROGRAM. x86-64 Linux only.

#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: no_amx_tiles PROGRAM [ARGS...]\n");
        return 2;
    }
    struct sock_filter filter[] = {
        // Another ABI (i386, x32): allow.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        // arch_prctl with option ARCH_REQ_XCOMP_PERM (the low word of args[0]): EPERM.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_arch_prctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH_REQ_XCOMP_PERM, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "no_amx_tiles: prctl(PR_SET_NO_NEW_PRIVS) failed: %s\n", strerror(errno));
        return 2;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "no_amx_tiles: installing the seccomp filter failed: %s\n", strerror(errno));
        return 2;
    }
    errno = 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != -1 || errno != EPERM) {
        fprintf(stderr, "no_amx_tiles: the tile state request was not refused (errno %d)\n", errno);
        return 2;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no_amx_tiles: cannot run %s: %s\n", argv[1], strerror(errno));
    return 127;
}
