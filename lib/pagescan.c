/*
 * pagescan.c - a strict JSON reader for Notion list answers that allocates
 * nothing per value (see pagescan.h).
 *
 * One recursive descent over the text. Nodes go to one array that grows by
 * doubling and is kept for the next answer; strings without escapes point
 * into the text, the others are decoded into the arena, which is sized
 * before the scan so that nothing pointing into it moves.
 *
 * Over 500 lines because it is one reader: values, strings (escapes,
 * surrogates, UTF-8 checks), numbers as json-c reads them, and the walk
 * over an answer's results share the scanner's state and its rules for
 * what it declines; each part is small.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "complete.h"
#include "pagescan.h"
#include "text.h"

struct scanner {
	struct nsync_scan *s;
	const char *text, *p, *end;
	int depth;
	size_t result;    /* index of the result being read, or NO_RESULT */
	int results_seen; /* top-level "results" members */
	const char *const *members;
	size_t n_members, member_len[NSYNC_SCAN_MAX_MEMBERS];
	int nomem;
};

#define NO_RESULT ((size_t)-1)

/* What a container is to the scan: any value, the answer object (whose
 * "results" member is looked for) or the "results" array. */
enum role { ANY, ANSWER, RESULTS };

static void mark_odd(struct scanner *sc)
{
	if (sc->result != NO_RESULT)
		sc->s->results[sc->result].odd = 1;
}

static inline void skip_ws(struct scanner *sc)
{
	while (sc->p < sc->end &&
	       (*sc->p == ' ' || *sc->p == '\n' || *sc->p == '\r' || *sc->p == '\t'))
		sc->p++;
}

/* Double the tape; 0 when out of memory. Out of line: push runs for
 * every value and should stay small. */
static __attribute__((noinline)) int grow_tape(struct scanner *sc)
{
	struct nsync_scan *s = sc->s;
	size_t cap = s->cap_nodes ? s->cap_nodes * 2 : 4096;
	struct nsync_node *grown =
		cap < NSYNC_NO_NODE ? realloc(s->nodes, cap * sizeof(*grown)) : NULL;

	if (!grown) {
		sc->nomem = 1;
		return 0;
	}
	s->nodes = grown;
	s->cap_nodes = cap;
	return 1;
}

/* A new node of type at the end of the tape; NSYNC_NO_NODE when out of memory. */
static inline uint32_t push(struct scanner *sc, uint8_t type)
{
	struct nsync_scan *s = sc->s;
	struct nsync_node *n;

	if (s->n_nodes == s->cap_nodes && !grow_tape(sc))
		return NSYNC_NO_NODE;
	n = &s->nodes[s->n_nodes];
	n->type = type;
	n->s = sc->p;
	n->len = n->span = 0;
	n->next = (uint32_t)s->n_nodes + 1;
	return (uint32_t)s->n_nodes++;
}

static char *put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xC0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/* Decode the escapes of a string from q (just past its plain head, which
 * is copied first) into the arena. Returns 0 on malformed text. Out of
 * line, as check_utf8: few strings need it, and scan_string stays small. */
static __attribute__((noinline)) int decode_string(struct scanner *sc, const char *head,
						   const char *q, struct nsync_node *n)
{
	struct nsync_scan *s = sc->s;
	char *start = s->arena + s->arena_used, *o = start;
	const char *end = sc->end;

	memcpy(o, head, (size_t)(q - head));
	o += q - head;
	while (q < end) {
		unsigned char c = (unsigned char)*q;
		unsigned u, lo;

		if (c == '"')
			break;
		if (c < 0x20)
			return 0;
		if (c != '\\') {
			*o++ = (char)c;
			q++;
			continue;
		}
		if (end - q < 2)
			return 0;
		switch (q[1]) {
		case '"':
		case '\\':
		case '/':
			*o++ = q[1];
			break;
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u':
			if (end - q < 6 || !nsync__hex4(q + 2, &u))
				return 0;
			if (u >= 0xD800 && u <= 0xDBFF && end - q >= 12 && q[6] == '\\' &&
			    q[7] == 'u' && nsync__hex4(q + 8, &lo) && lo >= 0xDC00 &&
			    lo <= 0xDFFF) {
				o = put_utf8(o, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
				q += 12;
				continue;
			}
			if (u == 0 || (u >= 0xD800 && u <= 0xDFFF))
				mark_odd(sc);
			o = put_utf8(o, u >= 0xD800 && u <= 0xDFFF ? 0xFFFD : u);
			q += 6;
			continue;
		default:
			return 0;
		}
		q += 2;
	}
	if (q >= end)
		return 0;
	n->s = start;
	n->len = (uint32_t)(o - start);
	s->arena_used += (size_t)(o - start);
	sc->p = q + 1;
	return 1;
}

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The first '"', '\\' or control character from q on (end if none); *high
 * is set when a byte before it is not ASCII. Sixteen bytes at a time where
 * SSE2 is there: strings are most of an answer's text. */
static inline const char *string_stop(const char *q, const char *end, int *high)
{
#if defined(__SSE2__)
	const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
	const __m128i control = _mm_set1_epi8(0x1F);

	while (end - q >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
		__m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
							 _mm_cmpeq_epi8(v, backslash)),
					    _mm_cmpeq_epi8(_mm_max_epu8(v, control),
							   control)); /* v <= 0x1F */
		unsigned mask = (unsigned)_mm_movemask_epi8(stop);
		unsigned hi = (unsigned)_mm_movemask_epi8(v);

		if (mask) {
			unsigned k = (unsigned)__builtin_ctz(mask);
			if (hi & ((1u << k) - 1))
				*high = 1;
			return q + k;
		}
		if (hi)
			*high = 1;
		q += 16;
	}
#endif
	for (; q < end; q++) {
		unsigned char c = (unsigned char)*q;
		if (c == '"' || c == '\\' || c < 0x20)
			break;
		if (c >= 0x80)
			*high = 1;
	}
	return q;
}

/* Note a string's raw bytes (from p, n bytes) that are not UTF-8: the
 * result's text must then be repaired on its way to PostgreSQL. */
static __attribute__((noinline)) void check_utf8(struct scanner *sc, const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0, k;

	while (i < n) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		k = nsync__utf8_seq_len(u + i, n - i);
		if (!k) {
			if (sc->result != NO_RESULT)
				sc->s->results[sc->result].bad_utf8 = 1;
			return;
		}
		i += k;
	}
}

/* A string at sc->p (its opening quote). */
static uint32_t scan_string(struct scanner *sc)
{
	const char *head = sc->p + 1, *q, *end = sc->end;
	uint32_t i = push(sc, NSYNC_NODE_STRING);
	struct nsync_node *n;
	int high = 0;

	if (i == NSYNC_NO_NODE)
		return i;
	n = &sc->s->nodes[i];
	q = string_stop(head, end, &high);
	if (q < end && *q == '"') {
		n->s = head;
		n->len = (uint32_t)(q - head);
		sc->p = q + 1;
		if (high)
			check_utf8(sc, head, (size_t)(q - head));
		return i;
	}
	if (q >= end || *q != '\\' || !decode_string(sc, head, q, n))
		return NSYNC_NO_NODE;
	check_utf8(sc, head, (size_t)(sc->p - 1 - head));
	return i;
}

static int is_digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* A number in RFC 8259's grammar; INT unless it has a fraction or exponent. */
static uint32_t scan_number(struct scanner *sc)
{
	const char *p = sc->p, *end = sc->end;
	uint8_t type = NSYNC_NODE_INT;
	uint32_t i;

	if (p < end && *p == '-')
		p++;
	if (!is_digit(p, end))
		return NSYNC_NO_NODE;
	if (*p++ != '0')
		while (is_digit(p, end))
			p++;
	if (p < end && *p == '.') {
		type = NSYNC_NODE_DOUBLE;
		if (!is_digit(++p, end))
			return NSYNC_NO_NODE;
		while (is_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		type = NSYNC_NODE_DOUBLE;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return NSYNC_NO_NODE;
		while (is_digit(p, end))
			p++;
	}
	i = push(sc, type);
	if (i != NSYNC_NO_NODE) {
		sc->s->nodes[i].len = (uint32_t)(p - sc->p);
		sc->p = p;
	}
	return i;
}

static uint32_t scan_literal(struct scanner *sc, const char *word, size_t n, uint8_t type)
{
	uint32_t i;

	if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
		return NSYNC_NO_NODE;
	i = push(sc, type);
	sc->p += n;
	return i;
}

static uint32_t scan_container(struct scanner *sc, enum role role);

static uint32_t scan_value(struct scanner *sc)
{
	skip_ws(sc);
	if (sc->p >= sc->end)
		return NSYNC_NO_NODE;
	switch (*sc->p) {
	case '{':
	case '[':
		return scan_container(sc, ANY);
	case '"':
		return scan_string(sc);
	case 't':
		return scan_literal(sc, "true", 4, NSYNC_NODE_TRUE);
	case 'f':
		return scan_literal(sc, "false", 5, NSYNC_NODE_FALSE);
	case 'n':
		return scan_literal(sc, "null", 4, NSYNC_NODE_NULL);
	default:
		return scan_number(sc);
	}
}

/* A NUL-terminated copy of string node v in the arena. */
static const char *arena_copy(struct nsync_scan *s, const struct nsync_node *v)
{
	char *copy = s->arena + s->arena_used;

	memcpy(copy, v->s, v->len);
	copy[v->len] = '\0';
	s->arena_used += v->len + 1;
	return copy;
}

/* Note the asked-for members of the result just read. */
static void record_members(struct scanner *sc, struct nsync_scan_result *r)
{
	struct nsync_scan *s = sc->s;
	uint32_t k, m, n = s->nodes[r->node].len;
	size_t j;

	for (k = r->node + 1, m = 0; m < n; m++, k = s->nodes[k + 1].next) {
		const struct nsync_node *key = &s->nodes[k];
		for (j = 0; j < sc->n_members; j++)
			if (key->len == sc->member_len[j] &&
			    memcmp(key->s, sc->members[j], key->len) == 0) {
				if (r->member[j] != NSYNC_NO_NODE)
					r->twice = 1;
				r->member[j] = k + 1;
			}
	}
	for (j = 0; j < sc->n_members; j++)
		if (r->member[j] != NSYNC_NO_NODE &&
		    s->nodes[r->member[j]].type == NSYNC_NODE_STRING)
			r->string[j] = arena_copy(s, &s->nodes[r->member[j]]);
}

/* The next element of "results": an object, recorded. */
static uint32_t scan_result(struct scanner *sc)
{
	struct nsync_scan *s = sc->s;
	struct nsync_scan_result *r;
	uint32_t v;
	size_t j;

	skip_ws(sc);
	if (sc->p >= sc->end || *sc->p != '{')
		return NSYNC_NO_NODE;
	if (s->n_results == s->cap_results) {
		size_t cap = s->cap_results ? s->cap_results * 2 : 128;
		struct nsync_scan_result *grown = realloc(s->results, cap * sizeof(*grown));
		if (!grown) {
			sc->nomem = 1;
			return NSYNC_NO_NODE;
		}
		s->results = grown;
		s->cap_results = cap;
	}
	sc->result = s->n_results++;
	r = &s->results[sc->result];
	memset(r, 0, sizeof(*r));
	for (j = 0; j < NSYNC_SCAN_MAX_MEMBERS; j++)
		r->member[j] = NSYNC_NO_NODE;
	v = scan_container(sc, ANY);
	sc->result = NO_RESULT;
	if (v == NSYNC_NO_NODE)
		return v;
	r->node = v;
	record_members(sc, r);
	return v;
}

/* A member of the answer object, after its key k: "results" is read as
 * the list of results (once). */
static uint32_t scan_answer_member(struct scanner *sc, uint32_t k)
{
	const struct nsync_node *key = &sc->s->nodes[k];
	uint32_t v;

	if (key->len != 7 || memcmp(key->s, "results", 7) != 0)
		return scan_value(sc);
	skip_ws(sc);
	if (sc->results_seen++ || sc->p >= sc->end || *sc->p != '[')
		return NSYNC_NO_NODE;
	sc->s->results_off = (size_t)(sc->p - sc->text);
	v = scan_container(sc, RESULTS);
	if (v != NSYNC_NO_NODE)
		sc->s->results_len = sc->s->nodes[v].span;
	return v;
}

static uint32_t scan_container(struct scanner *sc, enum role role)
{
	const char *start = sc->p;
	int is_object = *start == '{';
	char close = is_object ? '}' : ']';
	uint32_t i, count = 0;
	struct nsync_node *n;

	if (++sc->depth > NSYNC_SCAN_MAX_DEPTH)
		return NSYNC_NO_NODE;
	i = push(sc, is_object ? NSYNC_NODE_OBJECT : NSYNC_NODE_ARRAY);
	if (i == NSYNC_NO_NODE)
		return i;
	sc->p++;
	skip_ws(sc);
	if (sc->p < sc->end && *sc->p == close) {
		sc->p++;
		goto done;
	}
	for (;;) {
		uint32_t v;

		if (is_object) {
			uint32_t k;

			skip_ws(sc);
			if (sc->p >= sc->end || *sc->p != '"')
				return NSYNC_NO_NODE;
			k = scan_string(sc);
			if (k == NSYNC_NO_NODE)
				return k;
			skip_ws(sc);
			if (sc->p >= sc->end || *sc->p != ':')
				return NSYNC_NO_NODE;
			sc->p++;
			v = role == ANSWER ? scan_answer_member(sc, k) : scan_value(sc);
		} else {
			v = role == RESULTS ? scan_result(sc) : scan_value(sc);
		}
		if (v == NSYNC_NO_NODE)
			return v;
		count++;
		skip_ws(sc);
		if (sc->p < sc->end && *sc->p == ',') {
			sc->p++;
			continue;
		}
		if (sc->p < sc->end && *sc->p == close) {
			sc->p++;
			break;
		}
		return NSYNC_NO_NODE;
	}
done:
	n = &sc->s->nodes[i]; /* the tape may have moved */
	n->len = count;
	n->span = (uint32_t)(sc->p - start);
	n->next = (uint32_t)sc->s->n_nodes;
	sc->depth--;
	return i;
}

int nsync__scan_answer(struct nsync_scan *s, const char *text, size_t len,
		       const char *const *members, size_t n_members)
{
	struct scanner sc;
	size_t j, need = 2 * len + 1;
	uint32_t root;

	s->n_nodes = s->n_results = s->arena_used = 0;
	s->results_off = s->results_len = 0;
	if (len > 0x7fffffff || n_members > NSYNC_SCAN_MAX_MEMBERS)
		return 0;
	/* Decoded strings are shorter than their text, and the copies of
	 * the asked-for members shorter again: 2 * len bytes hold both. */
	if (s->arena_cap < need) {
		char *grown = realloc(s->arena, need);
		if (!grown)
			return -1;
		s->arena = grown;
		s->arena_cap = need;
	}
	memset(&sc, 0, sizeof(sc));
	sc.s = s;
	sc.text = sc.p = text;
	sc.end = text + len;
	sc.result = NO_RESULT;
	sc.members = members;
	sc.n_members = n_members;
	for (j = 0; j < n_members; j++)
		sc.member_len[j] = strlen(members[j]);
	skip_ws(&sc);
	if (sc.p >= sc.end || *sc.p != '{')
		return 0;
	root = scan_container(&sc, ANSWER);
	if (root == NSYNC_NO_NODE) {
		s->n_results = 0;
		return sc.nomem ? -1 : 0;
	}
	skip_ws(&sc);
	if (sc.p != sc.end || sc.results_seen != 1) {
		s->n_results = 0;
		return 0;
	}
	return 1;
}

void nsync__scan_free(struct nsync_scan *s)
{
	free(s->nodes);
	free(s->arena);
	free(s->results);
	memset(s, 0, sizeof(*s));
}

uint32_t nsync__scan_get_n(const struct nsync_scan *s, uint32_t obj, const char *key, size_t len)
{
	uint32_t k, m, found = NSYNC_NO_NODE;

	if (obj == NSYNC_NO_NODE || s->nodes[obj].type != NSYNC_NODE_OBJECT)
		return NSYNC_NO_NODE;
	for (k = obj + 1, m = 0; m < s->nodes[obj].len; m++, k = s->nodes[k + 1].next)
		if (s->nodes[k].len == len && memcmp(s->nodes[k].s, key, len) == 0)
			found = k + 1;
	return found;
}

uint32_t nsync__scan_get(const struct nsync_scan *s, uint32_t obj, const char *key)
{
	return nsync__scan_get_n(s, obj, key, strlen(key));
}

int nsync__scan_is_string(const struct nsync_scan *s, uint32_t v, const char *str)
{
	size_t n = strlen(str);

	return v != NSYNC_NO_NODE && s->nodes[v].type == NSYNC_NODE_STRING &&
	       s->nodes[v].len == n && memcmp(s->nodes[v].s, str, n) == 0;
}

int nsync__scan_number(const struct nsync_scan *s, uint32_t v, struct nsync_number *out)
{
	const struct nsync_node *n = &s->nodes[v];
	char text[64];

	if (n->len >= sizeof(text))
		return 0;
	memcpy(text, n->s, n->len);
	text[n->len] = '\0';
	/* json-c: strtod for a double; strtoll for a negative integer,
	 * strtoull for another, kept as uint64 above INT64_MAX. Both clamp
	 * out-of-range values and json-c keeps the clamped value. */
	if (n->type == NSYNC_NODE_DOUBLE) {
		out->kind = NSYNC_NUM_DOUBLE;
		out->d = strtod(text, NULL);
	} else if (text[0] == '-') {
		out->kind = NSYNC_NUM_INT64;
		out->i = strtoll(text, NULL, 10);
		out->d = (double)out->i;
	} else {
		out->u = strtoull(text, NULL, 10);
		out->kind = out->u <= INT64_MAX ? NSYNC_NUM_INT64 : NSYNC_NUM_UINT64;
		out->i = (int64_t)out->u;
		out->d = (double)out->u;
	}
	return 1;
}

/* json_object_get_boolean of node v (NSYNC_NO_NODE: json-c's NULL). */
static int boolean_of(const struct nsync_scan *s, uint32_t v)
{
	struct nsync_number num;

	if (v == NSYNC_NO_NODE)
		return 0;
	switch (s->nodes[v].type) {
	case NSYNC_NODE_TRUE:
		return 1;
	case NSYNC_NODE_STRING:
		return s->nodes[v].len != 0;
	case NSYNC_NODE_INT:
	case NSYNC_NODE_DOUBLE:
		return nsync__scan_number(s, v, &num) && num.d != 0;
	default:
		return 0;
	}
}

/* Mentions of pages, users, databases and data sources in a rich text
 * array (complete.c counts the same). */
static size_t count_references(const struct nsync_scan *s, uint32_t arr)
{
	static const char *const kinds[] = {"page", "user", "database", "data_source"};
	uint32_t e, m;
	size_t refs = 0, i;

	for (e = arr + 1, m = 0; m < s->nodes[arr].len; m++, e = s->nodes[e].next) {
		uint32_t mention = nsync__scan_get(s, e, "mention"), what;
		if (!nsync__scan_is_string(s, nsync__scan_get(s, e, "type"), "mention") ||
		    mention == NSYNC_NO_NODE)
			continue;
		what = nsync__scan_get(s, mention, "type");
		for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
			if (nsync__scan_is_string(s, what, kinds[i])) {
				refs++;
				break;
			}
	}
	return refs;
}

/* nsync__value_may_be_truncated (complete.c) on node value. */
static int value_may_be_truncated(const struct nsync_scan *s, uint32_t value)
{
	uint32_t type = nsync__scan_get(s, value, "type"), inner;

	if (type == NSYNC_NO_NODE || s->nodes[type].type != NSYNC_NODE_STRING)
		return 0;
	inner = nsync__scan_get_n(s, value, s->nodes[type].s, s->nodes[type].len);
	if (inner == NSYNC_NO_NODE || s->nodes[inner].type != NSYNC_NODE_ARRAY)
		return 0;
	if (nsync__scan_is_string(s, type, "relation"))
		return boolean_of(s, nsync__scan_get(s, value, "has_more"));
	if (nsync__scan_is_string(s, type, "people"))
		return s->nodes[inner].len >= NSYNC_REFERENCE_LIMIT;
	if (nsync__scan_is_string(s, type, "title") || nsync__scan_is_string(s, type, "rich_text"))
		return count_references(s, inner) >= NSYNC_REFERENCE_LIMIT;
	return 0;
}

int nsync__scan_props_may_be_truncated(const struct nsync_scan *s, uint32_t props)
{
	uint32_t k, m;

	if (props == NSYNC_NO_NODE || s->nodes[props].type != NSYNC_NODE_OBJECT)
		return 0;
	for (k = props + 1, m = 0; m < s->nodes[props].len; m++, k = s->nodes[k + 1].next)
		if (value_may_be_truncated(s, k + 1))
			return 1;
	return 0;
}

/* A NUL-terminated copy of string node v: in buf (size bytes) when it
 * fits, else newly allocated (*heap, to free). NULL when out of memory. */
static const char *c_string(const struct nsync_node *v, char *buf, size_t size, char **heap)
{
	char *copy = v->len < size ? buf : (*heap = malloc((size_t)v->len + 1));

	if (!copy)
		return NULL;
	memcpy(copy, v->s, v->len);
	copy[v->len] = '\0';
	return copy;
}

static int build_tree(const struct nsync_scan *s, uint32_t v, struct json_object **out);

static int build_members(const struct nsync_scan *s, uint32_t v, struct json_object *obj)
{
	uint32_t k, m;

	for (k = v + 1, m = 0; m < s->nodes[v].len; m++, k = s->nodes[k + 1].next) {
		struct json_object *value = NULL;
		char buf[256], *heap = NULL;
		const char *key = c_string(&s->nodes[k], buf, sizeof(buf), &heap);
		int added = key && build_tree(s, k + 1, &value) &&
			    json_object_object_add(obj, key, value) == 0;

		free(heap);
		if (!added) {
			json_object_put(value);
			return 0;
		}
	}
	return 1;
}

static int build_elements(const struct nsync_scan *s, uint32_t v, struct json_object *arr)
{
	uint32_t e, m;

	for (e = v + 1, m = 0; m < s->nodes[v].len; m++, e = s->nodes[e].next) {
		struct json_object *value;
		if (!build_tree(s, e, &value))
			return 0;
		if (json_object_array_add(arr, value) != 0) {
			json_object_put(value);
			return 0;
		}
	}
	return 1;
}

/* json-c's parser makes: JSON null as NULL, an integer as int64 (uint64
 * above INT64_MAX), a double with its text kept for printing, members
 * added in text order. */
static int build_tree(const struct nsync_scan *s, uint32_t v, struct json_object **out)
{
	const struct nsync_node *n = &s->nodes[v];
	struct nsync_number num;
	char text[64];

	*out = NULL;
	switch (n->type) {
	case NSYNC_NODE_NULL:
		return 1;
	case NSYNC_NODE_TRUE:
	case NSYNC_NODE_FALSE:
		*out = json_object_new_boolean(n->type == NSYNC_NODE_TRUE);
		break;
	case NSYNC_NODE_INT:
		if (!nsync__scan_number(s, v, &num))
			return 0;
		*out = num.kind == NSYNC_NUM_UINT64 ? json_object_new_uint64(num.u)
						    : json_object_new_int64(num.i);
		break;
	case NSYNC_NODE_DOUBLE:
		/* Read, so shorter than text (not on a page the tape did not vouch for). */
		if (!nsync__scan_number(s, v, &num))
			return 0;
		memcpy(text, n->s, n->len);
		text[n->len] = '\0';
		*out = json_object_new_double_s(num.d, text);
		break;
	case NSYNC_NODE_STRING:
		*out = json_object_new_string_len(n->s, (int)n->len);
		break;
	case NSYNC_NODE_ARRAY:
		*out = json_object_new_array_ext((int)n->len);
		if (*out && !build_elements(s, v, *out)) {
			json_object_put(*out);
			*out = NULL;
		}
		break;
	case NSYNC_NODE_OBJECT:
		*out = json_object_new_object();
		if (*out && !build_members(s, v, *out)) {
			json_object_put(*out);
			*out = NULL;
		}
		break;
	}
	return *out != NULL;
}

int nsync__scan_tree(const struct nsync_scan *s, uint32_t v, struct json_object **out)
{
	return build_tree(s, v, out);
}
