// A small Markdown subset for chat replies, in two steps: parse() turns text into a
// plain tree (testable without a browser) and render() builds DOM nodes from it with
// createElement and text nodes only. Model output therefore can never become HTML:
// a "<script>" in a reply is shown as the characters "<script>".
//
// Blocks: fenced code (an unclosed fence runs to the end, as while streaming),
// headings, lists, quotes, rules, paragraphs. Inline: `code`, **bold**, *italic*,
// [links](url) (web and mail addresses only; anything else stays text).

const FENCE = /^\s{0,3}(```|~~~)\s*([\w+#.-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*)$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;

export function parse(text) {
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = line.match(FENCE))) {
      const body = [];
      i++;
      while (i < lines.length && !(lines[i].match(FENCE) && lines[i].trim().startsWith(m[1]))) body.push(lines[i++]);
      i++;
      blocks.push({ type: 'code', lang: m[2], text: body.join('\n') });
    } else if (!line.trim()) {
      i++;
    } else if ((m = line.match(HEADING))) {
      blocks.push({ type: 'heading', level: m[1].length, children: inline(m[2]) });
      i++;
    } else if (RULE.test(line)) {
      blocks.push({ type: 'rule' });
      i++;
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      const ordered = !BULLET.test(line);
      const pattern = ordered ? NUMBERED : BULLET;
      const start = ordered ? Number(line.match(NUMBERED)[1]) : 1;
      const items = [];
      while (i < lines.length && (m = lines[i].match(pattern))) {
        items.push(inline(ordered ? m[2] : m[1]));
        i++;
      }
      blocks.push({ type: 'list', ordered, start, items });
    } else if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && (m = lines[i].match(QUOTE))) { body.push(m[1]); i++; }
      blocks.push({ type: 'quote', children: parse(body.join('\n')) });
    } else {
      const body = [];
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) body.push(lines[i++]);
      blocks.push({ type: 'paragraph', children: inline(body.join('\n')) });
    }
  }
  return blocks;
}

function startsBlock(line) {
  return [FENCE, HEADING, BULLET, NUMBERED, QUOTE, RULE].some((re) => re.test(line));
}

const INLINE = [
  { type: 'code', re: /`([^`\n]+)`/ },
  { type: 'link', re: /\[([^\]\n]+)\]\(([^)\s]+)\)/ },
  { type: 'strong', re: /\*\*([^*\n](?:[^\n]*?[^*\n])?)\*\*/ },
  { type: 'strong', re: /__([^_\n](?:[^\n]*?[^_\n])?)__/ },
  { type: 'em', re: /\*([^*\s](?:[^*\n]*?[^*\s])?)\*/ },
  { type: 'em', re: /(?<![\w])_([^_\s](?:[^_\n]*?[^_\s])?)_(?![\w])/ },
];

/** Inline spans of one block's text, as a list of nodes. */
export function inline(text) {
  const out = [];
  let rest = text;
  while (rest) {
    let best = null;
    for (const rule of INLINE) {
      const m = rest.match(rule.re);
      if (m && (!best || m.index < best.m.index)) best = { rule, m };
    }
    if (!best) { out.push({ type: 'text', text: rest }); break; }
    const { rule, m } = best;
    if (m.index) out.push({ type: 'text', text: rest.slice(0, m.index) });
    if (rule.type === 'code') out.push({ type: 'code', text: m[1] });
    else if (rule.type === 'link') {
      const href = safeUrl(m[2]);
      out.push(href ? { type: 'link', href, children: inline(m[1]) } : { type: 'text', text: m[0] });
    } else out.push({ type: rule.type, children: inline(m[1]) });
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

/** The URL when it is http(s) or mailto; null otherwise (javascript:, data:, ...). */
export function safeUrl(url) {
  return /^(https?:\/\/|mailto:)[^\s<>"']+$/i.test(url) ? url : null;
}

/** DOM nodes for Markdown text. */
export function render(text) {
  const fragment = document.createDocumentFragment();
  for (const block of parse(text)) fragment.append(renderBlock(block));
  return fragment;
}

function renderBlock(b) {
  switch (b.type) {
    case 'code': return codeBlock(b);
    case 'heading': return nodes(document.createElement(`h${Math.min(b.level + 2, 6)}`), b.children);
    case 'rule': return document.createElement('hr');
    case 'quote': {
      const q = document.createElement('blockquote');
      b.children.forEach((c) => q.append(renderBlock(c)));
      return q;
    }
    case 'list': {
      const list = document.createElement(b.ordered ? 'ol' : 'ul');
      if (b.ordered && b.start !== 1) list.start = b.start;
      b.items.forEach((item) => list.append(nodes(document.createElement('li'), item)));
      return list;
    }
    default: return nodes(document.createElement('p'), b.children);
  }
}

function codeBlock(b) {
  const wrap = document.createElement('div');
  wrap.className = 'code';
  const bar = document.createElement('div');
  bar.className = 'code-bar';
  const lang = document.createElement('span');
  lang.textContent = b.lang || 'code';
  const copy = document.createElement('button');
  copy.type = 'button';
  copy.className = 'small';
  copy.textContent = 'Copy';
  copy.addEventListener('click', () => {
    navigator.clipboard?.writeText(b.text).then(() => { copy.textContent = 'Copied'; }, () => {});
  });
  bar.append(lang, copy);
  const pre = document.createElement('pre');
  const code = document.createElement('code');
  code.textContent = b.text;
  pre.append(code);
  wrap.append(bar, pre);
  return wrap;
}

function nodes(parent, list) {
  for (const n of list) {
    if (n.type === 'text') parent.append(document.createTextNode(n.text));
    else if (n.type === 'code') {
      const c = document.createElement('code');
      c.textContent = n.text;
      parent.append(c);
    } else if (n.type === 'link') {
      const a = document.createElement('a');
      a.href = n.href;
      a.rel = 'noopener noreferrer';
      a.target = '_blank';
      parent.append(nodes(a, n.children));
    } else parent.append(nodes(document.createElement(n.type === 'strong' ? 'strong' : 'em'), n.children));
  }
  return parent;
}
