/*
 * respond.h - writing FastCGI answers: status line, headers, JSON body, and
 * the one place where library error codes become HTTP statuses.
 */
#ifndef FCGI_RESPOND_H
#define FCGI_RESPOND_H

#include <fcgiapp.h>

#include "notionsync.h"

/* fcgi_status_for - the HTTP status for a library error code. */
int fcgi_status_for(nsync_rc code);

/* fcgi_send_json - write status, headers and body (a JSON text). extra
 * headers (may be NULL) are "Name: value\r\n" lines. */
void fcgi_send_json(FCGX_Stream *out, int status, const char *extra_headers, const char *body);

/* fcgi_send_text - write status, headers and a body of the given
 * Content-Type (sent as it is, no newline added). */
void fcgi_send_text(FCGX_Stream *out, int status, const char *content_type, const char *body);

/* fcgi_send_error - {"success":false,"error":{"code","message"}} with the
 * given status. A 500 never carries internals: its message is generic
 * (the detail goes to the log instead). run_id > 0 is added for 409. */
void fcgi_send_error(FCGX_Stream *out, int status, const char *code, const char *message,
		     long run_id, const char *extra_headers);

#endif
