/* cruder: one binary, several roles. main() only dispatches. */
#include <stdio.h>
#include <string.h>

#include "roles/roles.h"

static void usage(FILE *out)
{
    fprintf(out,
            "cruder %s - a scalable CRUD backend that speaks the PocketBase REST API\n\n"
            "usage: cruder <command> [options]\n\n"
            "commands:\n"
            "  serve                            run everything in one process (HTTP API, SQLite)\n"
            "  gateway --config FILE            reverse proxy in front of cruder processes\n"
            "  superuser upsert EMAIL PASSWORD  create a superuser or change its password\n"
            "  superuser delete EMAIL           remove a superuser\n\n"
            "  cruder <command> --help          options of a command\n"
            "  cruder --version                 print the version\n",
            CRUDER_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("cruder %s\n", CRUDER_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "serve"))
        return role_serve(argc - 2, argv + 2);
    if (!strcmp(cmd, "gateway"))
        return role_gateway(argc - 2, argv + 2);
    if (!strcmp(cmd, "superuser"))
        return role_superuser(argc - 2, argv + 2);
    fprintf(stderr, "cruder: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
