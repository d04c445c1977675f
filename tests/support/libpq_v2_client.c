/*
 * A libpq client for tests/live_v2_server.rs: run against the `server` example with
 * `--max-protocol 2.0`, libpq 13 falls back to protocol 2.0 (the server answers its 3.0
 * start-up with an error in 2.0's format). Built by the test against libpq 13 (the npm
 * PostgreSQL 13 package) with Debian's libpq headers.
 *
 *   libpq_v2_client CONNINFO STEP...
 *
 * Steps:  q:SQL      send SQL (PQsendQuery) and print every result
 *         in:SQL     the same, feeding the next argument as COPY FROM STDIN data
 *         fn:OID:ARG call function OID with one text argument (PQfn), print the int result
 *         cancel:SQL send SQL, cancel it after 300 ms (PQcancel), print the results
 *
 * Output, one line each: "protocol N", "server_version V", then for every step "> STEP" and
 * its results: a row as its values joined by '|' ("[NULL]" for NULL), "tag T" for a command,
 * "error E" (the message without its final newline), "copy-out D" per line of COPY TO STDOUT,
 * "notify CHAN from PID" (PID compared with the backend's: "self" or "other"), and "status S"
 * (PQtransactionStatus) after each step. Exit status 0, or 1 when the connection fails
 * ("connect E" on stdout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libpq-fe.h>

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        s[--n] = '\0';
}

static void print_notifies(PGconn *conn)
{
    PGnotify *n;
    PQconsumeInput(conn);
    while ((n = PQnotifies(conn)) != NULL)
    {
        printf("notify %s from %s\n", n->relname,
               n->be_pid == PQbackendPID(conn) ? "self" : "other");
        PQfreemem(n);
    }
}

static void print_result(PGconn *conn, PGresult *r, const char *copy_data)
{
    switch (PQresultStatus(r))
    {
        case PGRES_TUPLES_OK:
            for (int i = 0; i < PQntuples(r); i++)
            {
                for (int j = 0; j < PQnfields(r); j++)
                {
                    if (j > 0)
                        putchar('|');
                    fputs(PQgetisnull(r, i, j) ? "[NULL]" : PQgetvalue(r, i, j), stdout);
                }
                putchar('\n');
            }
            printf("tag %s\n", PQcmdStatus(r));
            break;
        case PGRES_COMMAND_OK:
            printf("tag %s\n", PQcmdStatus(r));
            break;
        case PGRES_EMPTY_QUERY:
            printf("empty\n");
            break;
        case PGRES_COPY_IN:
            if (copy_data)
                PQputCopyData(conn, copy_data, (int) strlen(copy_data));
            PQputCopyEnd(conn, NULL);
            break;
        case PGRES_COPY_OUT:
        {
            char *line;
            int n;
            while ((n = PQgetCopyData(conn, &line, 0)) > 0)
            {
                trim(line);
                printf("copy-out %s\n", line);
                PQfreemem(line);
            }
            break;
        }
        default:
        {
            char *e = strdup(PQresultErrorMessage(r));
            trim(e);
            printf("error %s\n", e);
            free(e);
        }
    }
}

static void run_query(PGconn *conn, const char *sql, const char *copy_data, int cancel)
{
    PGresult *r;
    if (!PQsendQuery(conn, sql))
    {
        char *e = strdup(PQerrorMessage(conn));
        trim(e);
        printf("send-error %s\n", e);
        free(e);
        return;
    }
    if (cancel)
    {
        char errbuf[256];
        PGcancel *c = PQgetCancel(conn);
        usleep(300 * 1000);
        if (!PQcancel(c, errbuf, sizeof errbuf))
            printf("cancel-error %s\n", errbuf);
        PQfreeCancel(c);
    }
    while ((r = PQgetResult(conn)) != NULL)
    {
        print_result(conn, r, copy_data);
        PQclear(r);
    }
}

static const char *status_name(PGTransactionStatusType s)
{
    switch (s)
    {
        case PQTRANS_IDLE: return "idle";
        case PQTRANS_INTRANS: return "in-transaction";
        case PQTRANS_INERROR: return "failed";
        case PQTRANS_ACTIVE: return "active";
        default: return "unknown";
    }
}

int main(int argc, char **argv)
{
    PGconn *conn;
    if (argc < 2)
    {
        fprintf(stderr, "usage: %s CONNINFO STEP...\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK)
    {
        char *e = strdup(PQerrorMessage(conn));
        trim(e);
        printf("connect %s\n", e);
        free(e);
        PQfinish(conn);
        return 1;
    }
    printf("protocol %d\n", PQprotocolVersion(conn));
    printf("server_version %s\n", PQparameterStatus(conn, "server_version")
           ? PQparameterStatus(conn, "server_version") : "[none]");
    for (int i = 2; i < argc; i++)
    {
        const char *step = argv[i];
        printf("> %s\n", step);
        if (strncmp(step, "q:", 2) == 0)
            run_query(conn, step + 2, NULL, 0);
        else if (strncmp(step, "in:", 3) == 0 && i + 1 < argc)
        {
            run_query(conn, step + 3, argv[i + 1], 0);
            i++;
        }
        else if (strncmp(step, "cancel:", 7) == 0)
            run_query(conn, step + 7, NULL, 1);
        else if (strncmp(step, "fn:", 3) == 0)
        {
            int oid = atoi(step + 3);
            const char *arg = strchr(step + 3, ':');
            PQArgBlock a;
            int result = 0, result_len = 0;
            PGresult *r;
            arg = arg ? arg + 1 : "";
            a.isint = 0;
            a.len = (int) strlen(arg);
            a.u.ptr = (int *) arg;
            r = PQfn(conn, oid, &result, &result_len, 1, &a, 1);
            if (PQresultStatus(r) == PGRES_COMMAND_OK)
                printf("fn %d (%d bytes)\n", result, result_len);
            else
            {
                char *e = strdup(PQresultErrorMessage(r));
                trim(e);
                printf("fn-error %s\n", e);
                free(e);
            }
            PQclear(r);
        }
        else
            printf("unknown step\n");
        print_notifies(conn);
        printf("status %s\n", status_name(PQtransactionStatus(conn)));
    }
    PQfinish(conn);
    return 0;
}
