/* Minimal pause process for the embedded cluster's pod sandboxes (built with gcc -static).
 * Holds the pod's namespaces, reaps zombies, exits on SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }
static void on_chld(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
    struct sigaction term = {.sa_handler = on_term}, chld = {.sa_handler = on_chld, .sa_flags = SA_NOCLDSTOP};
    if (getpid() != 1) fprintf(stderr, "pause: warning: not running as pid 1\n");
    if (sigaction(SIGINT, &term, NULL) < 0 || sigaction(SIGTERM, &term, NULL) < 0 ||
        sigaction(SIGCHLD, &chld, NULL) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    for (;;) pause();
}
