"""Word alignment across tokenizers: word splitting, the boundary rule, coverage, gathering.

The rule under test: a word is kept iff its end is a token boundary in every tokenization
(some token ends exactly there, no token up to it reaches past, no later token starts
before it), and its position is the *last* token ending there.
"""

import math
import random

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers
from transformers import PreTrainedTokenizerFast

from interlingua.activations import extract
from interlingua.align import (
    WordAlignment,
    align_offsets,
    align_words,
    last_token_of_words,
    tokenize_offsets,
    word_spans,
)
from interlingua.errors import InterlinguaError

from conftest import SAMPLE_TEXTS

# ---------------------------------------------------------------------------------------------
# helpers


def reference_last_token(offsets, spans):
    """Brute-force statement of the rule, one word and one token at a time."""
    real = [(i, s, e) for i, (s, e) in enumerate(offsets) if e > s]
    out = []
    for _, end in spans:
        hit = None
        for i, _s, e in real:
            if e != end:
                continue
            before_ok = all(e2 <= end for j, _, e2 in real if j <= i)
            after_ok = all(s2 >= end for j, s2, _ in real if j > i)
            if before_ok and after_ok:
                hit = i  # keep going: the last such token wins
        out.append(hit)
    return out


def check_alignment(al: WordAlignment, offsets: dict):
    """Every kept word satisfies the rule in every tokenizer, and no word is wrongly dropped."""
    for t, text in enumerate(al.texts):
        spans = word_spans(text)
        ref = {n: reference_last_token(offsets[n][t], spans) for n in offsets}
        expected_kept = [sp for w, sp in enumerate(spans) if all(ref[n][w] is not None for n in offsets)]
        assert al.words[t] == expected_kept, text
        for n, per_doc in offsets.items():
            per_text, idx = per_doc[t], al.token_index[n][t]
            assert len(idx) == len(al.words[t])
            for (_, end), i in zip(al.words[t], idx):
                assert per_text[i][1] == end                      # the token ends at the word end
                assert per_text[i][1] > per_text[i][0]            # and is not a special token
                assert all(s >= end for s, e in per_text[i + 1:] if e > s)   # nothing later starts inside
                assert all(e <= end for s, e in per_text[:i + 1] if e > s)   # nothing earlier reaches past
                assert not any(e == end and e > s for s, e in per_text[i + 1:])  # it is the last such token


def spanning_tokenizer() -> PreTrainedTokenizerFast:
    """A SentencePiece-like vocabulary with pieces that run across a word end: "s▁" and "g."."""
    alphabet = list("abcdefghijklmnopqrstuvwxyz.,▁")
    vocab = {"<unk>": 0, **{c: i + 1 for i, c in enumerate(alphabet)}}
    merges = [("s", "▁"), ("g", ".")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tok.normalizer = normalizers.Replace(" ", "▁")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def random_texts(n: int, seed: int = 0) -> list[str]:
    pieces = ["the", "dog", "Elinor", "café", "cafe\u0301", "naïve", "Ελληνικά", "λόγος", "日本語", "中",
              "हिन्दी", "😀", "👍", "🦜", "👨\u200d👩\u200d👧", "❤️", "3", "3.14", "1,234", "don't", "it’s",
              "'tis", "x²", ".", ",", "!", "?!", "“", "”", "—", "...", "(", ")", "_", "-", "'", "€"]
    gaps = [" ", " ", " ", "", "  ", "\n", "\n\n", "\t", " \n "]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) + rng.choice(gaps) for _ in range(rng.randint(1, 25))) for _ in range(n)]


def toks(tok, text):
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=True)
    return tok.convert_ids_to_tokens(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


# ---------------------------------------------------------------------------------------------
# words


@pytest.mark.parametrize("text, words", [
    ("Hello, world!", ["Hello", ",", "world", "!"]),
    ("  two  spaces\nnew\tline ", ["two", "spaces", "new", "line"]),
    ("The café costs 3.50 €.", ["The", "café", "costs", "3", ".", "50", "€."]),
    ("don't it’s rock'n'roll 'tis students' ", ["don't", "it’s", "rock'n'roll", "'", "tis", "students", "'"]),
    ("Ελληνικά and 日本語 😀👍", ["Ελληνικά", "and", "日本語", "😀👍"]),
    # combining marks stay inside their word (Python's \w alone would cut these apart)
    ("cafe\u0301 हिन्दी नमस्ते สวัสดี", ["cafe\u0301", "हिन्दी", "नमस्ते", "สวัสดี"]),
    ("“no!” she said—yes...", ["“", "no", "!”", "she", "said", "—", "yes", "..."]),
    # underscores are punctuation (Gutenberg italics); emoji keep their joiners and selectors
    ("_her_, snake_case", ["_", "her", "_,", "snake", "_", "case"]),
    ("👨\u200d👩\u200d👧 ❤️ 1️⃣ x²", ["👨\u200d👩\u200d👧", "❤️", "1️⃣", "x²"]),
    ("", []),
    (" \n\t ", []),
])
def test_word_spans(text, words):
    spans = word_spans(text)
    assert [text[s:e] for s, e in spans] == words
    assert all(s < e for s, e in spans) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


# ---------------------------------------------------------------------------------------------
# the pure boundary rule on hand-made offsets


@pytest.mark.parametrize("offsets, spans, expected", [
    # offsets that include the leading space ("Ġworld" → (5, 11)) still end at the word end
    ([(0, 5), (5, 11)], [(0, 5), (6, 11)], [0, 1]),
    # special tokens (BOS first, EOS last) have empty spans: never matched, never in the way
    ([(0, 0), (0, 5), (5, 11), (0, 0)], [(0, 5), (6, 11)], [1, 2]),
    # "x 🦜 y": four byte tokens all report (2, 3); the word's token is the last of them
    ([(0, 1), (1, 2), (2, 3), (2, 3), (2, 3), (2, 3), (3, 5)], [(0, 1), (2, 3), (4, 5)], [0, 5, 6]),
    # byte-level " 日" → (12, 14) then two more bytes of 日 at (13, 14)
    ([(8, 12), (12, 14), (13, 14), (13, 14)], [(9, 12), (13, 14)], [0, 3]),
    # "dogs ran": a piece "s▁" (3, 5) runs across the end of "dogs" → dropped
    ([(0, 3), (3, 5), (5, 8)], [(0, 4), (5, 8)], [None, 2]),
    # "ab.c": a piece "b." (1, 3) spans the end of "ab"; "." still ends on its boundary
    ([(0, 1), (1, 3), (3, 4)], [(0, 2), (2, 3), (3, 4)], [None, 1, 2]),
    # a later token starting inside the word (a byte token crossing characters) → dropped
    ([(0, 2), (1, 3)], [(0, 2), (2, 3)], [None, 1]),
    # non-monotone offsets: a token (0, 3) reaching past "ab", then one (1, 2) inside it → both dropped
    ([(0, 3), (1, 2), (3, 4)], [(0, 2), (2, 3), (3, 4)], [None, None, 2]),
    # an earlier token reaching past the word end → dropped, although a later token ends there
    ([(0, 3), (2, 2), (1, 2), (3, 5)], [(0, 2), (2, 5)], [None, 3]),
    # a word the tokenization does not reach (truncated) → dropped
    ([(0, 3)], [(0, 3), (4, 7)], [0, None]),
    ([], [(0, 3)], [None]),
    ([(0, 3)], [], []),
])
def test_last_token_of_words(offsets, spans, expected):
    assert last_token_of_words(offsets, spans) == expected
    assert reference_last_token(offsets, spans) == expected


def test_last_token_agrees_with_brute_force_on_random_offsets():
    rng = random.Random(1)
    for _ in range(2000):
        n_chars = rng.randint(1, 12)
        cuts = sorted(rng.sample(range(1, n_chars + 1), rng.randint(1, n_chars)))
        offsets, start = [], 0
        for c in cuts:  # a segmentation, then noise: byte splits, overlaps, specials
            offsets.append((start, c))
            start = c
        if n_chars not in cuts:
            offsets.append((start, n_chars))
        noisy = []
        for s, e in offsets:
            r = rng.random()
            if r < 0.15:
                noisy += [(s, e)] * rng.randint(2, 4)
            elif r < 0.25 and s > 0:
                noisy.append((s - 1, e))
            elif r < 0.3:
                noisy.append((0, 0))
            else:
                noisy.append((s, e))
        ends = sorted(rng.sample(range(1, n_chars + 1), rng.randint(1, n_chars)))
        spans = [(e - 1, e) for e in ends]
        assert last_token_of_words(noisy, spans) == reference_last_token(noisy, spans), (noisy, spans)


# ---------------------------------------------------------------------------------------------
# tiny in-process tokenizers


def test_byte_fallback_emoji_uses_the_last_byte_token(bpe_tokenizer, sp_tokenizer):
    text = "x 🦜 y"
    bpe_tokens, _ = toks(bpe_tokenizer, text)
    sp_tokens, sp_off = toks(sp_tokenizer, text)
    # 🦜 is outside both tiny vocabularies: four byte tokens, all with span (2, 3)
    assert sp_tokens == ["<bos>", "x", "▁", "<0xF0>", "<0x9F>", "<0xA6>", "<0x9C>", "▁y"]
    assert sp_off[3:7] == [(2, 3)] * 4
    assert len(bpe_tokens) == 7 and bpe_tokens[0] == "x" and bpe_tokens[6] == "Ġy"
    al = align_words([text], {"bpe": bpe_tokenizer, "sp": sp_tokenizer})
    assert al.word_strings() == ["x", "🦜", "y"]
    assert al.token_index == {"bpe": [[0, 5, 6]], "sp": [[1, 6, 7]]}
    assert al.coverage == 1.0


def test_sample_texts_hand_checked(bpe_tokenizer, sp_tokenizer):
    # "  leading spaces and\nnew lines\n\nand tabs\tend"
    #  bpe: Ġ Ġl e ad ing Ġs p a c es Ġand Ċ ne w Ġl in es Ċ Ċ a nd Ġt ab s ĉ e nd
    #  sp:  <bos> ▁ ▁le ad ing ▁sp ac es ▁and \n ne w ▁l in es \n \n and ▁t ab s \t end
    text = SAMPLE_TEXTS[4]
    al = align_words([text], {"bpe": bpe_tokenizer, "sp": sp_tokenizer})
    assert al.word_strings() == ["leading", "spaces", "and", "new", "lines", "and", "tabs", "end"]
    assert al.token_index["bpe"] == [[4, 9, 10, 13, 16, 20, 23, 26]]
    assert al.token_index["sp"] == [[4, 7, 8, 11, 14, 17, 20, 22]]


def test_sample_texts_obey_the_rule(bpe_tokenizer, sp_tokenizer):
    texts = SAMPLE_TEXTS + ["Ελληνικά 日本語 🦜🦜 x", "tab\tand\r\nCRLF", "“Quoted,” he said—“really?”"]
    tokenizers = {"bpe": bpe_tokenizer, "sp": sp_tokenizer}
    al = align_words(texts, tokenizers)
    offsets = {n: tokenize_offsets(texts, t) for n, t in tokenizers.items()}
    check_alignment(al, offsets)
    # the tiny SentencePiece-like vocabulary learned a piece "ed," (5, 8) that runs across the end
    # of "Quoted": the only word lost; "—" falls back to three byte tokens, all (17, 18)
    assert toks(sp_tokenizer, texts[-1])[0][5:7] == ["ed,", "”"]
    assert toks(sp_tokenizer, texts[-1])[0][10:13] == ["<0xE2>", "<0x80>", "<0x94>"]
    assert al.on_boundary == {"bpe": al.n_words, "sp": al.n_words - 1}
    dropped = [text[s:e] for t, text in enumerate(texts) for s, e in word_spans(text) if (s, e) not in al.words[t]]
    assert dropped == ["Quoted"]
    # decoded tokens up to each word's last token cover exactly the text up to the word end
    for n, tok in tokenizers.items():
        for t, text in enumerate(texts):
            ids = tok(text)["input_ids"]
            first = int(ids[0] == tok.bos_token_id)  # the byte tokens count as special: keep them
            for (_, end), i in zip(al.words[t], al.token_index[n][t]):
                assert tok.decode(ids[first:i + 1]) == text[:end]


def test_random_texts_obey_the_rule(bpe_tokenizer, sp_tokenizer):
    texts = random_texts(300)
    tokenizers = {"bpe": bpe_tokenizer, "sp": sp_tokenizer, "span": spanning_tokenizer()}
    al = align_words(texts, tokenizers)
    offsets = {n: tokenize_offsets(texts, t) for n, t in tokenizers.items()}
    check_alignment(al, offsets)
    assert 0 < len(al) < al.n_words


def test_a_piece_across_a_word_end_drops_the_word(bpe_tokenizer, sp_tokenizer):
    span = spanning_tokenizer()
    text = "the dogs ran. a dog."
    tokens, offsets = toks(span, text)
    assert tokens == ["t", "h", "e", "▁", "d", "o", "g", "s▁", "r", "a", "n", ".", "▁", "a", "▁", "d", "o", "g."]
    assert offsets[7] == (7, 9) and offsets[17] == (18, 20)
    al = align_words([text], {"span": span})
    # "dogs" ends inside "s▁", "dog" inside "g."; the final "." ends where "g." ends, so it stays
    assert al.word_strings() == ["the", "ran", ".", "a", "."]
    assert al.token_index["span"] == [[2, 10, 11, 13, 17]]
    assert al.n_words == 7 and al.coverage == pytest.approx(5 / 7)
    # with more tokenizers the kept words are the intersection; every index is still right
    three = align_words([text], {"bpe": bpe_tokenizer, "sp": sp_tokenizer, "span": span})
    assert three.word_strings() == ["the", "ran", ".", "a", "."]
    assert three.names == ["bpe", "sp", "span"]
    assert three.on_boundary == {"bpe": 7, "sp": 7, "span": 5}
    check_alignment(three, {n: tokenize_offsets([text], t) for n, t in
                            {"bpe": bpe_tokenizer, "sp": sp_tokenizer, "span": span}.items()})


def test_max_tokens_drops_words_beyond_and_never_cuts_a_character(bpe_tokenizer, sp_tokenizer):
    text = "x 🦜 y"  # bpe: x Ġ ð Ł ¦ ľ Ġy — four byte tokens for the parrot
    full = align_words([text], {"bpe": bpe_tokenizer})
    assert full.token_index["bpe"] == [[0, 5, 6]]
    # after 4 tokens the parrot is half read, though its 2nd byte token "ends" at its end
    cut = align_words([text], {"bpe": bpe_tokenizer}, max_tokens=4)
    assert cut.word_strings() == ["x"] and cut.n_words == 3 and cut.max_tokens == 4
    assert align_words([text], {"bpe": bpe_tokenizer}, max_tokens=6).word_strings() == ["x", "🦜"]
    # truncation counts BOS, as the model's input does
    both = align_words([text], {"bpe": bpe_tokenizer, "sp": sp_tokenizer}, max_tokens=7)
    assert both.token_index == {"bpe": [[0, 5]], "sp": [[1, 6]]}


def test_coverage_flat_and_strings(bpe_tokenizer, sp_tokenizer):
    texts = ["the dogs ran.", "", "a dog."]
    al = align_words(texts, {"sp": sp_tokenizer, "span": spanning_tokenizer()})
    assert al.n_words_per_text == [4, 0, 3]
    assert al.word_strings() == ["the", "ran", ".", "a", "."]
    assert len(al) == 5 and al.n_words == 7 and al.coverage == pytest.approx(5 / 7)
    per_text = al.coverage_per_text()
    assert per_text[0] == pytest.approx(3 / 4) and math.isnan(per_text[1]) and per_text[2] == pytest.approx(2 / 3)
    doc, pos = al.flat("span")
    assert doc.dtype == pos.dtype == torch.long
    assert doc.tolist() == [0, 0, 0, 2, 2]
    assert pos.tolist() == [2, 10, 11, 0, 4]
    assert al.flat("sp")[1].tolist() == [2, 7, 8, 1, 4]
    summary = al.summary()
    assert summary["n_kept"] == 5 and summary["tokenizers"]["sp"]["coverage_alone"] == 1.0
    with pytest.raises(KeyError, match="no tokenizer 'nope'"):
        al.flat("nope")


def test_align_offsets_matches_align_words(bpe_tokenizer, sp_tokenizer):
    texts = SAMPLE_TEXTS
    tokenizers = {"bpe": bpe_tokenizer, "sp": sp_tokenizer}
    offsets = {n: tokenize_offsets(texts, t) for n, t in tokenizers.items()}
    a, b = align_words(texts, tokenizers, max_tokens=12), align_offsets(texts, offsets, max_tokens=12)
    assert (a.words, a.token_index, a.n_words_per_text) == (b.words, b.token_index, b.n_words_per_text)


def test_bad_input(bpe_tokenizer):
    with pytest.raises(InterlinguaError, match="no texts to align"):
        align_words([], {"bpe": bpe_tokenizer})
    with pytest.raises(InterlinguaError, match="no tokenizers"):
        align_words(["hi"], {})
    with pytest.raises(InterlinguaError, match="not a single string"):
        align_words("hi there", {"bpe": bpe_tokenizer})
    with pytest.raises(InterlinguaError, match="item 1 is int"):
        align_words(["hi", 3], {"bpe": bpe_tokenizer})
    with pytest.raises(InterlinguaError, match="not a tokenizer"):
        align_words(["hi"], {"bpe": object()})
    with pytest.raises(InterlinguaError, match="max_tokens"):
        align_words(["hi"], {"bpe": bpe_tokenizer}, max_tokens=0)
    with pytest.raises(InterlinguaError, match="offsets for 1 texts, expected 2"):
        align_offsets(["a", "b"], {"x": [[(0, 1)]]})


# ---------------------------------------------------------------------------------------------
# gathering activations


TEXTS = SAMPLE_TEXTS + ["x 🦜 y", "A somewhat longer document, with more words in it."]
HOOK = "resid_post.1"


@pytest.fixture(scope="module")
def both(llama, gemma):
    al = align_words(TEXTS, {"llama": llama, "gemma": gemma})  # LoadedModel works as well
    return al, extract(llama, TEXTS, HOOK), extract(gemma, TEXTS, HOOK)


def test_gather_picks_the_rows_of_the_last_tokens(both):
    al, a_llama, a_gemma = both
    for name, acts in [("llama", a_llama), ("gemma", a_gemma)]:
        got = al.gather(acts, name, HOOK)
        assert got.shape == (len(al), acts[HOOK].shape[1])
        doc, pos = al.flat(name)
        for r, (d, p) in enumerate(zip(doc.tolist(), pos.tolist())):
            row = ((acts.doc == d) & (acts.pos == p)).nonzero().item()
            assert torch.equal(got[r], acts[HOOK][row])
        # the token at each gathered row ends exactly at its word's end
        ends = [e for spans in al.words for _, e in spans]
        rows = [((acts.doc == d) & (acts.pos == p)).nonzero().item() for d, p in zip(doc.tolist(), pos.tolist())]
        assert acts.char_end[rows].tolist() == ends
    # row order in the activations does not matter
    perm = torch.randperm(len(a_gemma), generator=torch.Generator().manual_seed(0))
    shuffled = a_gemma.select(perm)
    assert torch.equal(al.gather(shuffled, "gemma", HOOK), al.gather(a_gemma, "gemma", HOOK))


def test_gather_refuses_rows_it_cannot_match(both, llama):
    al, a_llama, a_gemma = both
    # skip_first=1 drops position 0, the last token of "The" for the BOS-less tokenizer
    skipped = extract(llama, TEXTS, HOOK, skip_first=1)
    with pytest.raises(InterlinguaError, match="no activation row for 'llama'.*position 0.*skip_first=1"):
        al.gather(skipped, "llama", HOOK)
    # activations of the other model: positions exist, but their tokens end elsewhere
    with pytest.raises(InterlinguaError, match="do not line up"):
        al.gather(a_gemma, "llama", HOOK)
    # activations of other texts
    other = extract(llama, TEXTS[:3], HOOK)
    with pytest.raises(InterlinguaError, match="other texts"):
        al.gather(other, "llama", HOOK)
    # truncated extraction: words past max_tokens have no rows
    short = extract(llama, TEXTS, HOOK, max_tokens=5)
    with pytest.raises(InterlinguaError, match="max_tokens"):
        al.gather(short, "llama", HOOK)
    # ...unless the alignment is truncated the same way
    al5 = align_words(TEXTS, {"llama": llama}, max_tokens=5)
    assert al5.gather(short, "llama", HOOK).shape[0] == len(al5) > 0
    with pytest.raises(KeyError):
        al.gather(a_llama, "llama", "resid_post.0")


# ---------------------------------------------------------------------------------------------
# the two real tokenizers (slow: the first call may convert a GGUF)


@pytest.fixture(scope="module")
def real_tokenizers():
    from interlingua.models import load_tokenizer

    return {"smollm2": load_tokenizer("smollm2-135m"), "gemma3": load_tokenizer("gemma3-270m")}


# Tokenizations inspected by eye (offsets are character spans; Gemma adds <bos> at 0):
REAL_CASES = [
    # smollm2: Hello(0,5) ,(5,6) Ġworld(6,12) !(12,13)
    # gemma3:  <bos> Hello(0,5) ,(5,6) ▁world(6,12) !(12,13)
    ("Hello, world!", ["Hello", ",", "world", "!"], [0, 1, 2, 3], [1, 2, 3, 4]),
    # smollm2: The Ġcafé Ġcosts Ġ(14,15) 3 . 5 0 Ġ€(19,21) .(21,22)
    # gemma3:  <bos> The ▁café ▁costs ▁(14,15) 3 . 5 0 ▁€.(19,22)   ← "€" alone is no boundary here
    ("The café costs 3.50 €.", ["The", "café", "costs", "3", ".", "50", "€."],
     [0, 1, 2, 4, 5, 7, 9], [1, 2, 3, 5, 6, 8, 9]),
    # smollm2: Î ķ(both (0,1)) Î» Î» Î· Î½ Î¹ Îº Î¬(7,8) Ġand Ġæ(12,14) Ĺ(13,14) ¥(13,14) æľ¬(14,15)
    #          è ª ŀ(all (15,16)) ĠðŁĺ(16,18) Ģ(17,18) ðŁ ĳ į(all (18,19))
    # gemma3:  <bos> Ε λλην ικά(5,8) ▁and ▁日本(12,15) 語(15,16) ▁😀(16,18) 👍(18,19)
    ("Ελληνικά and 日本語 😀👍", ["Ελληνικά", "and", "日本語", "😀👍"], [8, 9, 16, 21], [3, 4, 6, 8]),
    # smollm2: don 't(3,5) Ġstop      gemma3: <bos> don '(3,4) t(4,5) ▁stop
    ("don't stop", ["don't", "stop"], [1, 2], [3, 4]),
    # smollm2: Ġ(0,1) Ġtwo(1,5) Ġ(5,6) Ġspaces(6,13) Ċ newline
    # gemma3:  <bos> ▁▁(0,2) two(2,5) ▁▁(5,7) spaces(7,13) \n newline
    ("  two  spaces\nnewline", ["two", "spaces", "newline"], [1, 3, 5], [2, 4, 6]),
    # words: ' tis x² , y — smollm2: 't(0,2) is Ġx Â²(6,7) , Ġy → "'" ends inside "'t"
    #                      gemma3: <bos> ' tis ▁x ²,(6,8) ▁y → "x²" ends inside "²,"
    ("'tis x², y", ["tis", ",", "y"], [1, 4, 5], [2, 4, 5]),
    # words: note . ¹ Done — smollm2: note . Â¹ ĠDone; gemma3: <bos> note .¹(4,6) ▁Done → "." dropped
    ("note.¹ Done", ["note", "¹", "Done"], [0, 2, 3], [1, 2, 3]),
]


@pytest.mark.slow
@pytest.mark.parametrize("text, kept, smol, gemma", REAL_CASES, ids=[c[0] for c in REAL_CASES])
def test_real_tokenizers_hand_checked(real_tokenizers, text, kept, smol, gemma):
    al = align_words([text], real_tokenizers)
    assert al.word_strings() == kept
    assert al.token_index == {"smollm2": [smol], "gemma3": [gemma]}
    check_alignment(al, {n: tokenize_offsets([text], t) for n, t in real_tokenizers.items()})


@pytest.mark.slow
def test_real_tokenizer_quirks(real_tokenizers):
    smol, gem = real_tokenizers["smollm2"], real_tokenizers["gemma3"]
    assert toks(smol, "'tis")[0][0] == "'t"               # contraction rule grabs a leading "'t"
    assert toks(gem, "x², y")[0][-2:] == ["²,", "▁y"]      # superscripts merge with punctuation
    assert toks(gem, "3.50 €.")[0][-1] == "▁€."
    assert toks(gem, "Hello world") == (["<bos>", "Hello", "▁world"], [(0, 0), (0, 5), (5, 11)])
    assert toks(smol, "Hello world") == (["Hello", "Ġworld"], [(0, 5), (5, 11)])
    # Gemma-3 has no piece that ends in "▁" after other text (no "s▁"), only whitespace runs
    trailing = [p for p in gem.get_vocab() if p.endswith("▁") and p.strip("▁") and len(p) > 1]
    assert trailing == []
    al = align_words(["'tis x², y"], real_tokenizers)
    assert al.on_boundary == {"smollm2": 4, "gemma3": 4} and al.n_words == 5


@pytest.mark.slow
def test_real_corpus_coverage(real_tokenizers):
    from interlingua.data import load_corpus

    docs = load_corpus("test", max_docs=200)
    al = align_words(docs, real_tokenizers)
    # measured: 51,144 of 51,144 words (coverage 1.0) on these 200 documents
    assert al.n_words > 40_000
    assert al.coverage >= 0.995
    assert min(al.coverage_per_text()) >= 0.97
    assert all(n / al.n_words >= 0.995 for n in al.on_boundary.values())
    offsets = {n: tokenize_offsets(docs[:40], t) for n, t in real_tokenizers.items()}
    head = align_words(docs[:40], real_tokenizers)
    check_alignment(head, offsets)


@pytest.mark.slow
def test_real_tokenizers_on_varied_text(real_tokenizers):
    texts = random_texts(200, seed=3) + [
        "नमस्ते दुनिया, हिन्दी।", "สวัสดีครับ ไทย", "Привет, мир! Это тест.", "مرحبا بالعالم، هذا اختبار.",
        "e.g. i.e. U.S.A. www.example.com/a_b?x=1", "x² + y² = z²; ½ cup; №5", "👨‍👩‍👧 family ❤️ 1️⃣",
    ]
    al = align_words(texts, real_tokenizers)
    check_alignment(al, {n: tokenize_offsets(texts, t) for n, t in real_tokenizers.items()})
    assert al.coverage > 0.9
