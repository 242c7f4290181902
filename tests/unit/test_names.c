/* Unit tests of the name check (proto_name_problem, proto.c): a table of
 * names a user might type or an attacker might craft, look-alikes
 * included, and whether each may be registered. */
#include "../../fcgi/addr.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/config.c"
#include "../../fcgi/proto.c"
#include "../../fcgi/store.c"
#include "../../fcgi/store_pg.c"
#include "../../fcgi/token.c"
#include "../../fcgi/turn.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/walvfs.c"
#include "../../fcgi/wire.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

static const struct {
    const char *what;
    const char *name;
    int ok;
} names[] = {
    {"plain ASCII", "alice", 1},
    {"inner space", "alice smith", 1},
    {"NFC e with acute (U+00E9)", "ren\xc3\xa9", 1},
    {"Cyrillic a (U+0430): another name than Latin alice", "\xd0\xb0lice", 1},
    {"Greek", "\xce\xb1\xce\xbb\xce\xaf\xce\xba\xce\xb7", 1},
    {"CJK", "\xe5\xb0\x8f\xe6\x98\x8e", 1},
    {"emoji without a variation selector (U+1F600)", "\xf0\x9f\x98\x80", 1},
    {"64 bytes", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1},
    {"65 bytes", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
    {"empty", "", 0},
    {"one space", " ", 0},
    {"leading space", " alice", 0},
    {"trailing space", "alice ", 0},
    {"TAB (Cc)", "ali\tce", 0},
    {"DEL (Cc)", "ali\x7f" "ce", 0},
    {"C1 NEXT LINE U+0085 (Cc)", "ali\xc2\x85" "ce", 0},
    {"NO-BREAK SPACE U+00A0 (Zs)", "alice\xc2\xa0smith", 0},
    {"IDEOGRAPHIC SPACE U+3000 (Zs)", "alice\xe3\x80\x80", 0},
    {"EN SPACE U+2002 (Zs)", "al\xe2\x80\x82ice", 0},
    {"ZERO WIDTH SPACE U+200B (Cf)", "al\xe2\x80\x8bice", 0},
    {"ZERO WIDTH NON-JOINER U+200C (Cf)", "al\xe2\x80\x8cice", 0},
    {"ZERO WIDTH JOINER U+200D (Cf)", "al\xe2\x80\x8dice", 0},
    {"LEFT-TO-RIGHT MARK U+200E (Cf)", "alice\xe2\x80\x8e", 0},
    {"RIGHT-TO-LEFT EMBEDDING U+202B (Cf)", "\xe2\x80\xab" "alice", 0},
    {"RIGHT-TO-LEFT OVERRIDE U+202E (Cf)", "\xe2\x80\xae" "ecila", 0},
    {"LEFT-TO-RIGHT ISOLATE U+2066 (Cf)", "\xe2\x81\xa6" "alice", 0},
    {"POP DIRECTIONAL ISOLATE U+2069 (Cf)", "alice\xe2\x81\xa9", 0},
    {"WORD JOINER U+2060 (Cf)", "ali\xe2\x81\xa0" "ce", 0},
    {"BYTE ORDER MARK U+FEFF (Cf)", "\xef\xbb\xbf" "alice", 0},
    {"SOFT HYPHEN U+00AD (Cf)", "al\xc2\xad" "ice", 0},
    {"TAG LATIN SMALL LETTER A U+E0061 (Cf)", "alice\xf3\xa0\x81\xa1", 0},
    {"HANGUL FILLER U+3164 (default ignorable)", "\xe3\x85\xa4" "alice", 0},
    {"COMBINING GRAPHEME JOINER U+034F (default ignorable)", "ali\xcd\x8f" "ce", 0},
    {"VARIATION SELECTOR-16 U+FE0F (default ignorable)", "alice\xef\xb8\x8f", 0},
    {"LINE SEPARATOR U+2028 (Zl)", "alice\xe2\x80\xa8", 0},
    {"PARAGRAPH SEPARATOR U+2029 (Zp)", "alice\xe2\x80\xa9", 0},
    {"private use U+E000 (Co)", "\xee\x80\x80" "alice", 0},
    {"unassigned U+0378 (Cn)", "ali\xcd\xb8" "ce", 0},
    {"e + COMBINING ACUTE (NFD, not NFC)", "rene\xcc\x81", 0},
    {"ANGSTROM SIGN U+212B (NFC is U+00C5)", "\xe2\x84\xab", 0},
    {"invalid UTF-8", "ali\xff" "ce", 0},
    {"a surrogate in UTF-8 (CESU)", "\xed\xa0\x80", 0},
};

int main(void)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *why = proto_name_problem(names[i].name);
        char label[160];
        snprintf(label, sizeof label, "name %s: %s", names[i].ok ? "allowed" : "refused",
                 names[i].what);
        CHECK(label, (why == NULL) == names[i].ok && proto_name_valid(names[i].name) == names[i].ok);
        if (why && !names[i].ok && strlen(why) < 20) printf("# short sentence: %s\n", why);
    }
    return unit_done();
}
