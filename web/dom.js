// Building DOM nodes without HTML strings: text always goes in as text nodes, so
// nothing the server or the model sends can become markup.

/** h('div', {class: 'x', onclick: fn, text: 'hi'}, child, 'text', [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'value' || key === 'checked' || key === 'disabled') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  add(el, children);
  return el;
}

/** Appends children (nodes, strings as text, arrays, nulls skipped). */
export function add(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces an element's children. */
export function set(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}

/** A labelled form field; returns [wrapper, input]. */
export function field(label, props, children = []) {
  const id = 'f-' + Math.random().toString(36).slice(2, 9);
  const input = h(props.tag || 'input', { ...props, tag: null, id }, ...children);
  return [h('div', { class: 'field' }, h('label', { for: id, text: label }), input), input];
}

/** "3 min ago" style times for Unix seconds. */
export function ago(seconds) {
  const age = Math.max(0, Date.now() / 1000 - seconds);
  if (age < 60) return 'just now';
  if (age < 3600) return `${Math.floor(age / 60)} min ago`;
  if (age < 86400) return `${Math.floor(age / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleDateString();
}

export function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
