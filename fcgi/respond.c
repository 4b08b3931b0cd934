/*
 * respond.c - FastCGI answers and the error-to-status mapping (see
 * respond.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "respond.h"

int fcgi_status_for(nsync_rc code)
{
	switch (code) {
	case NSYNC_OK:
		return 200;
	case NSYNC_ERR_ARG:
		return 400;
	case NSYNC_ERR_NOT_FOUND:
	case NSYNC_ERR_NO_DATA_SOURCES:
		return 404;
	case NSYNC_ERR_BUSY:
	case NSYNC_ERR_DUPLICATE:
		return 409;
	case NSYNC_ERR_NOTION:
	case NSYNC_ERR_NOTION_AUTH:
	case NSYNC_ERR_PROTOCOL:
		return 502;
	case NSYNC_ERR_DB:
	case NSYNC_ERR_CONFIG:
		return 503;
	default:
		return 500;
	}
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

void fcgi_send_json(FCGX_Stream *out, int status, const char *extra_headers, const char *body)
{
	FCGX_FPrintF(out,
		     "Status: %d %s\r\n"
		     "Content-Type: application/json\r\n"
		     "Cache-Control: no-store\r\n"
		     "X-Content-Type-Options: nosniff\r\n"
		     "%s\r\n",
		     status, reason(status), extra_headers ? extra_headers : "");
	FCGX_PutS(body, out);
	FCGX_PutS("\n", out);
}

void fcgi_send_text(FCGX_Stream *out, int status, const char *content_type, const char *body)
{
	FCGX_FPrintF(out,
		     "Status: %d %s\r\n"
		     "Content-Type: %s\r\n"
		     "Cache-Control: no-store\r\n"
		     "X-Content-Type-Options: nosniff\r\n"
		     "\r\n",
		     status, reason(status), content_type);
	FCGX_PutS(body, out);
}

void fcgi_send_error(FCGX_Stream *out, int status, const char *code, const char *message,
		     long run_id, const char *extra_headers)
{
	char *body;

	if (status >= 500 && status != 502 && status != 503) {
		code = "internal_error";
		message = "The server failed to handle the request; see its log.";
	}
	body = nsync_error_json(code, message, run_id);
	fcgi_send_json(out, status, extra_headers,
		       body ? body
			    : "{\"success\":false,\"error\":{\"code\":\"internal_error\","
			      "\"message\":\"out of memory\"}}");
	free(body);
}
