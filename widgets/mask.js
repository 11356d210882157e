// nasviz mask canvas (anywidget ES module: `export default { render }`, anywidget >= 0.9).
//
// Model state (set by nasviz/ui/_masks.py):
//   layer (str), rows, cols (ints): the mask as a rows x cols grid
//   bits (bytes): the grid, row-major, 1 bit per weight, numpy.packbits order (MSB first)
//   other_bits (bytes): a second mask of the same grid for diff mode, or empty
//   mode ("mask" | "diff")
//   window [r0, r1, c0, c1]: the region shown, in cells (Python sets it with a new layer and
//     with MaskViewer.zoom; this view sends it when the user zooms or pans)
//
// Big grids are drawn as density tiles (fraction kept, or fraction disagreeing, per pixel);
// zooming in (mouse wheel, drag to pan, double-click to reset) reaches exact bits once the
// window has at most H x W cells (CANVAS in nasviz/ui/_masks.py): each cell is then a block of
// pixels of one colour. The canvas may be shown scaled down by CSS; mouse positions are mapped
// through its on-screen size.

const W = 560;
const H = 360;

// Binary traitlets arrive as a DataView (ipywidgets 8); accept any buffer-like value.
function bytesOf(value) {
  if (!value) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return new Uint8Array(0);
}

// Bit i of a packbits buffer (0 past its end).
function bitAt(bytes, i) {
  return ((bytes[i >> 3] ?? 0) >> (7 - (i & 7))) & 1;
}

function paint(px, o, v, diff, empty = false) {
  if (empty) {
    px[o] = px[o + 1] = px[o + 2] = 255;
  } else if (diff) {
    px[o] = 255;
    px[o + 1] = px[o + 2] = Math.round(255 * (1 - v));
  } else {
    px[o] = Math.round(255 - 222 * v);
    px[o + 1] = Math.round(255 - 180 * v);
    px[o + 2] = Math.round(255 - 90 * v);
  }
  px[o + 3] = 255;
}

function draw(ctx, model, view, info) {
  const rows = model.get("rows");
  const cols = model.get("cols");
  const a = bytesOf(model.get("bits"));
  const diff = model.get("mode") === "diff";
  const b = diff ? bytesOf(model.get("other_bits")) : null;
  const img = ctx.createImageData(W, H);
  const px = img.data;
  const rspan = view.r1 - view.r0;
  const cspan = view.c1 - view.c0;
  const value = diff ? (i) => bitAt(a, i) ^ bitAt(b, i) : (i) => bitAt(a, i);
  const exact = rspan <= H && cspan <= W;
  // Cells are binned into at most H x W bins (one bin per cell along an axis that fits, so
  // exact bits there); each pixel shows its bin's density (fraction kept, or disagreeing).
  // An axis with fewer cells than pixels is stretched, never drawn as thin lines.
  const R = Math.min(H, rspan);
  const C = Math.min(W, cspan);
  const on = new Float32Array(R * C);
  const all = new Float32Array(R * C);
  if (rows * cols > 0) {
    const xbin = new Int32Array(cspan);
    for (let j = 0; j < cspan; j++) xbin[j] = Math.floor((j * C) / cspan);
    for (let r = view.r0; r < view.r1; r++) {
      const row = Math.floor(((r - view.r0) * R) / rspan) * C;
      const base = r * cols + view.c0;
      for (let j = 0; j < cspan; j++) {
        const k = row + xbin[j];
        on[k] += value(base + j);
        all[k] += 1;
      }
    }
  }
  const xpix = new Int32Array(W);
  for (let x = 0; x < W; x++) xpix[x] = Math.floor((x * C) / W);
  for (let y = 0; y < H; y++) {
    const row = Math.floor((y * R) / H) * C;
    for (let x = 0; x < W; x++) {
      const k = row + xpix[x];
      paint(px, (y * W + x) * 4, all[k] ? on[k] / all[k] : 0, diff, all[k] === 0);
    }
  }
  ctx.putImageData(img, 0, 0);
  const what = exact ? "exact bits" : "density tiles";
  info.textContent =
    `${model.get("layer")} — ${rows}×${cols}, rows ${view.r0}–${view.r1}, cols ${view.c0}–${view.c1} ` +
    `(${what}; ${diff ? "red = masks disagree" : "dark = kept"}; wheel to zoom, drag to pan, double-click to reset)`;
}

function render({ model, el }) {
  el.classList.add("nasviz-mask");
  const canvas = document.createElement("canvas");
  canvas.width = W;
  canvas.height = H;
  const info = document.createElement("div");
  info.className = "nasviz-mask-info";
  el.replaceChildren(canvas, info);
  const ctx = canvas.getContext("2d");
  const listeners = new AbortController();
  const on = (target, type, fn, options = {}) =>
    target.addEventListener(type, fn, { ...options, signal: listeners.signal });
  let view = null;

  const whole = () => ({ r0: 0, r1: Math.max(1, model.get("rows")), c0: 0, c1: Math.max(1, model.get("cols")) });
  // the window Python set, when it fits the grid; else the whole grid
  const fromModel = () => {
    const [r0, r1, c0, c1] = model.get("window") || [];
    const ok = [r0, r1, c0, c1].every(Number.isInteger) && 0 <= r0 && r0 < r1 &&
      r1 <= model.get("rows") && 0 <= c0 && c0 < c1 && c1 <= model.get("cols");
    return ok ? { r0, r1, c0, c1 } : whole();
  };
  // State changes arrive in batches (Python sends layer, bits and window together): the view
  // follows the model's window and repaints once per batch, after the last change event.
  let queued = false;
  const refresh = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      view = fromModel();
      draw(ctx, model, view, info);
    });
  };
  // the user zoomed or panned: the window goes to Python, and the view follows it here
  const show = (next) => {
    model.set("window", [next.r0, next.r1, next.c0, next.c1]);
    model.save_changes();
  };
  const clamp = (lo, span, n) => Math.max(0, Math.min(lo, n - span));
  // mouse position as a fraction of the canvas as shown (it may be scaled by CSS)
  const where = (e) => {
    const box = canvas.getBoundingClientRect();
    return {
      fx: Math.min(1, Math.max(0, (e.clientX - box.left) / (box.width || W))),
      fy: Math.min(1, Math.max(0, (e.clientY - box.top) / (box.height || H))),
    };
  };

  on(canvas, "wheel", (e) => {
    if (e.deltaY === 0) return;
    e.preventDefault();
    const rows = model.get("rows");
    const cols = model.get("cols");
    const f = e.deltaY < 0 ? 0.5 : 2;
    const { fx, fy } = where(e);
    const rspan = Math.max(1, Math.min(rows, Math.round((view.r1 - view.r0) * f)));
    const cspan = Math.max(1, Math.min(cols, Math.round((view.c1 - view.c0) * f)));
    const rc = view.r0 + fy * (view.r1 - view.r0);
    const cc = view.c0 + fx * (view.c1 - view.c0);
    const r0 = clamp(Math.round(rc - fy * rspan), rspan, rows);
    const c0 = clamp(Math.round(cc - fx * cspan), cspan, cols);
    show({ r0, r1: r0 + rspan, c0, c1: c0 + cspan });
  }, { passive: false });
  let drag = null;
  on(canvas, "mousedown", (e) => {
    e.preventDefault(); // no text selection while panning
    drag = { start: where(e), v: { ...view } };
  });
  on(window, "mouseup", () => {
    drag = null;
  });
  on(canvas, "mousemove", (e) => {
    if (!drag) return;
    const { fx, fy } = where(e);
    const rspan = drag.v.r1 - drag.v.r0;
    const cspan = drag.v.c1 - drag.v.c0;
    const r0 = clamp(drag.v.r0 - Math.round((fy - drag.start.fy) * rspan), rspan, model.get("rows"));
    const c0 = clamp(drag.v.c0 - Math.round((fx - drag.start.fx) * cspan), cspan, model.get("cols"));
    if (r0 !== view.r0 || c0 !== view.c0) show({ r0, r1: r0 + rspan, c0, c1: c0 + cspan });
  });
  on(canvas, "dblclick", () => show(whole()));

  const events = ["layer", "rows", "cols", "window", "bits", "other_bits", "mode"].map(
    (name) => `change:${name}`,
  );
  for (const event of events) model.on(event, refresh);
  view = fromModel();
  draw(ctx, model, view, info);
  return () => {
    listeners.abort();
    for (const event of events) model.off(event, refresh);
  };
}

export default { render };
