/* test_witness: the canonical bytes exactly as docs/WITNESS.md specifies them, export line
 * strictness, checkpoint signatures, the verifier's verdicts, and trace id headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/buf.h"
#include "witness.h"

static const char doc_example[] =
    "s2-witness-entry-v1\n"
    "seq:1:1\n"
    "time:13:1795609674494\n"
    "actor:5:admin\n"
    "swarm:0:\n"
    "phase:0:\n"
    "agent:0:\n"
    "task:0:\n"
    "op:8:log.init\n"
    "params:72:{\"public_key\":\"3I8w818wggd6ZvryEd++y0MsFbBuKFWO2Y8RvheY9l8=\",\"schema\":2}\n"
    "trace_id:32:8070428bd30830a69646755ea38494d6\n"
    "prev_hash:64:0000000000000000000000000000000000000000000000000000000000000000\n";

static struct witness_entry example(void)
{
    struct witness_entry w = {0};
    w.seq = 1;
    w.time = 1795609674494LL;
    w.actor = "admin";
    w.op = "log.init";
    w.params = "{\"public_key\":\"3I8w818wggd6ZvryEd++y0MsFbBuKFWO2Y8RvheY9l8=\",\"schema\":2}";
    w.trace_id = "8070428bd30830a69646755ea38494d6";
    return w;
}

static void test_canonical_matches_doc(void **state)
{
    (void)state;
    struct witness_entry w = example();
    struct buf b = BUF_INIT;
    witness_canonical(&w, &b);
    assert_string_equal(b.ptr, doc_example);
    witness_hash(&w);
    uint8_t want[32];
    crypto_hash_sha256(want, (const uint8_t *)doc_example, strlen(doc_example));
    assert_memory_equal(w.hash, want, 32);
    /* a task entry: phase and strings with bytes that need no escaping here */
    struct witness_entry t = example();
    t.swarm = "sw-1";
    t.task = "t\n9";
    t.has_phase = 1;
    t.phase = -3;
    buf_reset(&b);
    witness_canonical(&t, &b);
    assert_non_null(strstr(b.ptr, "\nphase:2:-3\n"));
    assert_non_null(strstr(b.ptr, "\ntask:3:t\n9\n"));
    buf_release(&b);
}

static void test_export_line_round_trip_and_strictness(void **state)
{
    (void)state;
    struct witness_entry w = example();
    w.swarm = "s\"w\\x\x01";
    witness_hash(&w);
    struct buf b = BUF_INIT;
    witness_export_entry(&b, &w);
    struct witness_parsed p;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(witness_parse_line(b.ptr, b.len - 1, &p, &err), 0);
    assert_int_equal(p.kind, WL_ENTRY);
    assert_string_equal(p.entry.swarm, "s\"w\\x\x01");
    assert_memory_equal(p.entry.hash, w.hash, 32);
    witness_parsed_release(&p);
    /* the same values spelled differently are refused */
    const char *variants[] = {
        "{\"type\":\"entry\", \"seq\":1}",
        "{\"seq\":1,\"type\":\"entry\"}",
        "{\"type\":\"entry\",\"seq\":1.0}",
        "{\"type\":\"mystery\"}",
        "[1,2]",
        "{\"type\":\"entry\",\"type\":\"entry\"}",
    };
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        assert_int_not_equal(witness_parse_line(variants[i], strlen(variants[i]), &p, &err), 0);
        s2_error_release(&err);
    }
    /* an extra space before the closing brace */
    struct buf s = BUF_INIT;
    buf_add(&s, b.ptr, b.len - 2);
    buf_adds(&s, " }");
    assert_int_not_equal(witness_parse_line(s.ptr, s.len, &p, &err), 0);
    assert_non_null(strstr(err.msg, "canonical"));
    s2_error_release(&err);
    /* an uppercase hex digit in the hash */
    char *h = strstr(b.ptr, "\"hash\":\"") + 8;
    char saved = *h;
    *h = (char)(*h >= 'a' ? *h - 32 : 'A');
    assert_int_not_equal(witness_parse_line(b.ptr, b.len - 1, &p, &err), 0);
    s2_error_release(&err);
    *h = saved;
    /* "" for an absent string */
    buf_reset(&s);
    buf_adds(&s, b.ptr);
    char *sw = strstr(s.ptr, "\"agent\":null");
    assert_non_null(sw);
    buf_release(&s);
    buf_release(&b);
}

static void test_checkpoint_sign_verify(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64], pk2[32], sk2[64];
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(pk2, sk2);
    struct witness_chain wc;
    witness_chain_init(&wc);
    struct witness_entry a = example(), b = example();
    witness_chain_append(&wc, &a);
    witness_chain_append(&wc, &b);
    assert_int_equal(b.seq, 2);
    assert_memory_equal(b.prev_hash, a.hash, 32);
    struct checkpoint cp;
    witness_chain_checkpoint(&wc, 1234, sk, &cp);
    assert_int_equal(cp.tree_size, 2);
    assert_int_equal(checkpoint_verify(&cp, pk), 0);
    assert_int_not_equal(checkpoint_verify(&cp, pk2), 0);
    cp.time++;
    assert_int_not_equal(checkpoint_verify(&cp, pk), 0);
    cp.time--;
    struct buf m = BUF_INIT;
    checkpoint_message(&cp, &m);
    assert_int_equal(strncmp(m.ptr, "s2-witness-checkpoint-v1\n2\n", 27), 0);
    assert_int_equal(m.ptr[m.len - 1], '\n');
    buf_release(&m);

    /* the verifier: good log, then a checkpoint out of place, then a wrong key */
    struct witness_verifier v;
    struct s2_error err = S2_ERROR_INIT;
    witness_verifier_init(&v, pk);
    assert_int_equal(witness_verify_entry(&v, &a, &err), 0);
    assert_int_not_equal(witness_verify_checkpoint(&v, &cp, &err), 0);
    s2_error_release(&err);
    witness_verifier_init(&v, pk);
    assert_int_equal(witness_verify_entry(&v, &a, &err), 0);
    assert_int_equal(witness_verify_entry(&v, &b, &err), 0);
    assert_int_equal(witness_verify_checkpoint(&v, &cp, &err), 0);
    assert_int_equal(witness_verify_finish(&v, &err), 0);
    witness_verifier_init(&v, pk2);
    witness_verify_entry(&v, &a, &err);
    witness_verify_entry(&v, &b, &err);
    assert_int_not_equal(witness_verify_checkpoint(&v, &cp, &err), 0);
    assert_non_null(strstr(err.msg, "signature"));
    s2_error_release(&err);
    /* an entry out of sequence names the position it should fill */
    witness_verifier_init(&v, pk);
    assert_int_not_equal(witness_verify_entry(&v, &b, &err), 0);
    assert_int_equal(v.first_bad, 1);
    s2_error_release(&err);
    /* entries not covered by a checkpoint */
    witness_verifier_init(&v, pk);
    witness_verify_entry(&v, &a, &err);
    assert_int_not_equal(witness_verify_finish(&v, &err), 0);
    s2_error_release(&err);
}

static void test_trace_headers(void **state)
{
    (void)state;
    char out[WITNESS_TRACE_MAX + 1];
    assert_int_equal(witness_trace_from_headers("run-1:step.2", NULL, out), 0);
    assert_string_equal(out, "run-1:step.2");
    assert_int_not_equal(witness_trace_from_headers("bad value", NULL, out), 0);
    assert_int_not_equal(witness_trace_from_headers("", NULL, out), 0);
    assert_int_equal(
        witness_trace_from_headers(NULL, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                   out),
        0);
    assert_string_equal(out, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_int_not_equal(
        witness_trace_from_headers(NULL, "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                   out),
        0);
    assert_int_not_equal(
        witness_trace_from_headers(NULL, "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                                   out),
        0);
    assert_int_not_equal(witness_trace_from_headers(NULL, "garbage", out), 0);
    char id[33];
    witness_new_trace_id(id);
    assert_int_equal(strlen(id), 32);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_matches_doc),
        cmocka_unit_test(test_export_line_round_trip_and_strictness),
        cmocka_unit_test(test_checkpoint_sign_verify),
        cmocka_unit_test(test_trace_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
