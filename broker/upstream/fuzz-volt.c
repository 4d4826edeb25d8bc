/* libFuzzer target: the VOLT event parsers (volt.h) on arbitrary packet
 * data, as the session calls them.
 *
 * Input: one mode byte, then the JSON text of a packet. Mode & 3 picks the
 * parser: 0 an EVENT (volt_parse_event, then volt_response_data for an
 * answer someone waits for), 1 the daemon:register ack, 2 the namespace
 * CONNECT, 3 a CONNECT_ERROR. Bit 2 asks for the recovery offset; bits 4-5
 * give the packet 0..3 binary attachments. Seeds in testdata/corpus-volt.
 *
 * Beyond "no crash, no leak, no UB" it traps when a property fails:
 * - every event kind's fields are consistent (ids NUL-terminated and in
 *   bounds, a uuid for responses, a refusal for salvaged events);
 * - a message the parser accepts, written back with volt_put_message(),
 *   parses again to the same type and the same msgpack data (the two
 *   conversions are inverse on what the first one produced);
 * - a server:request's payload always has a JSON form again
 *   (volt_put_answer succeeds on it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buf.h"
#include "proto/errors.h"
#include "upstream/volt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static const uint8_t att_bytes[3][4] = {{0, 1, 2, 3}, {0xff}, {'b', 'i', 'n', 0}};

static void check_event(const struct volt_event *ev)
{
    CHECK(ev->id_len <= VOLT_ID_MAX && ev->id[ev->id_len] == '\0');
    CHECK(strlen(ev->offset) <= VOLT_OFFSET_MAX);
    switch (ev->kind) {
    case VOLT_EV_IGNORED:
        CHECK(ev->why != NULL);
        break;
    case VOLT_EV_RESPONSE:
        CHECK(ev->id_len == 36);
        CHECK(ev->ok || ev->message.len > 0);
        break;
    case VOLT_EV_SALVAGE_RESPONSE:
        CHECK(ev->id_len == 36 && ev->malformed && ev->refusal);
        break;
    case VOLT_EV_SALVAGE_REQUEST:
        CHECK(ev->id_len > 0 && ev->malformed && ev->refusal);
        break;
    case VOLT_EV_SERVER_REQUEST:
        CHECK(ev->id_len > 0 && !ev->malformed);
        break;
    case VOLT_EV_MESSAGE:
        CHECK(ev->data.len > 0 && !ev->malformed);
        break;
    }
}

static void message_roundtrip(struct volt_parser *v, const struct volt_event *ev)
{
    struct proto_buf type, val, json;
    struct volt_out o;
    struct volt_event again;

    proto_buf_init(&type);
    proto_buf_init(&val);
    proto_buf_init(&json);
    /* Copies: the event's spans live in the parser, which parses again. */
    CHECK(proto_buf_append(&type, ev->type.ptr, ev->type.len) == 0);
    CHECK(proto_buf_append(&val, ev->data.ptr, ev->data.len) == 0);
    struct proto_span t = {type.data, (uint32_t)type.len};
    struct proto_span d = {val.data, (uint32_t)val.len};
    volt_out_init(&o, &json);
    CHECK(volt_put_message(&o, &t, &d) == 0);
    CHECK(volt_parse_event(v, (const char *)json.data, json.len, o.att, o.n_att, false, &again) ==
          0);
    CHECK(again.kind == VOLT_EV_MESSAGE);
    CHECK(again.type.len == type.len && !memcmp(again.type.ptr, type.data, type.len));
    CHECK(again.data.len == val.len && !memcmp(again.data.ptr, val.data, val.len));
    proto_buf_free(&type);
    proto_buf_free(&val);
    proto_buf_free(&json);
}

static void answer_payload(const struct volt_event *ev)
{
    struct proto_buf json;
    struct volt_out o;

    proto_buf_init(&json);
    volt_out_init(&o, &json);
    CHECK(volt_put_answer(&o, ev->id, ev->id_len, true, &ev->payload, NULL, NULL) == 0);
    proto_buf_free(&json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct volt_parser *v;
    struct proto_span att[3];
    struct volt_event ev;
    char pid[VOLT_PID_MAX + 1];
    struct volt_register_ack ack;

    if (size < 1)
        return 0;
    if (!v && !(v = volt_parser_new()))
        abort();
    uint8_t mode = data[0];
    const char *json = (const char *)data + 1;
    size_t len = size - 1;
    uint32_t n_att = (mode >> 4) & 3;
    for (uint32_t i = 0; i < 3; i++) {
        att[i].ptr = att_bytes[i];
        att[i].len = (uint32_t)sizeof(att_bytes[i]);
    }
    switch (mode & 3) {
    case 0:
        CHECK(volt_parse_event(v, json, len, att, n_att, (mode & 4) != 0, &ev) == 0);
        check_event(&ev);
        if (ev.kind == VOLT_EV_RESPONSE && ev.ok) {
            struct proto_span out;
            const char *why = NULL;
            if (volt_response_data(v, &out, &why) < 0)
                CHECK(why != NULL);
        } else if (ev.kind == VOLT_EV_MESSAGE) {
            message_roundtrip(v, &ev);
        } else if (ev.kind == VOLT_EV_SERVER_REQUEST && !ev.refusal) {
            answer_payload(&ev);
        }
        break;
    case 1:
        volt_parse_register_ack(v, json, len, &ack);
        CHECK(memchr(ack.code, 0, sizeof(ack.code)) && memchr(ack.message, 0, sizeof(ack.message)));
        break;
    case 2:
        volt_parse_connect(v, json, len, pid);
        CHECK(strlen(pid) <= VOLT_PID_MAX);
        break;
    case 3:
        CHECK(volt_parse_connect_error(v, json, len) != NULL);
        break;
    }
    return 0;
}
