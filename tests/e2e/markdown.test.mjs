// Unit tests of the Markdown parser (no browser needed): node --test
import test from 'node:test';
import assert from 'node:assert/strict';
import { parse, inline, safeUrl } from '../../web/markdown.js';
import { parseEvent } from '../../web/api.js';

test('blocks: code fences, headings, lists, quotes, paragraphs', () => {
  const doc = parse('# Title\n\nSome *text*.\n\n```rust\nfn main() {}\n```\n- a\n- b\n1. one\n> quoted\n---');
  assert.deepEqual(doc.map((b) => b.type), ['heading', 'paragraph', 'code', 'list', 'list', 'quote', 'rule']);
  assert.equal(doc[2].lang, 'rust');
  assert.equal(doc[2].text, 'fn main() {}');
  assert.equal(doc[3].items.length, 2);
  assert.equal(doc[4].ordered, true);
});

test('an unclosed fence (a reply still streaming) is code to the end', () => {
  const doc = parse('Here:\n```\nline 1\nline 2');
  assert.equal(doc[1].type, 'code');
  assert.equal(doc[1].text, 'line 1\nline 2');
});

test('HTML stays text', () => {
  const evil = '<script>alert(1)</script> <img src=x onerror=alert(2)>';
  const doc = parse(evil);
  assert.deepEqual(doc, [{ type: 'paragraph', children: [{ type: 'text', text: evil }] }]);
});

test('inline spans nest and code wins over emphasis', () => {
  const spans = inline('a **b *c*** `*d*` e');
  assert.deepEqual(spans.map((s) => s.type), ['text', 'strong', 'text', 'code', 'text']);
  assert.equal(spans[3].text, '*d*');
  assert.equal(inline('snake_case_name')[0].text, 'snake_case_name');
});

test('only safe link targets become links', () => {
  assert.equal(inline('[x](https://example.org)')[0].type, 'link');
  assert.equal(inline('[x](javascript:alert(1))')[0].type, 'text');
  assert.equal(safeUrl('data:text/html,hi'), null);
  assert.equal(safeUrl('mailto:a@b.c'), 'mailto:a@b.c');
});

test('server-sent events parse', () => {
  assert.deepEqual(parseEvent('event: token\ndata: {"text":"hi"}'), { event: 'token', data: { text: 'hi' } });
  assert.deepEqual(parseEvent('data: [DONE]'), { event: 'message', data: '[DONE]' });
  assert.equal(parseEvent(': comment'), null);
});
