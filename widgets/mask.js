// nasviz mask canvas (anywidget ES module).
//
// Model state (set by nasviz/ui/_masks.py):
//   layer (str), rows, cols (ints): the mask as a rows x cols grid
//   bits (bytes): the grid, row-major, 1 bit per weight, numpy.packbits order (MSB first)
//   other_bits (bytes): a second mask of the same grid for diff mode, or empty
//   mode ("mask" | "diff")
// Sends back: window [r0, r1, c0, c1] (the zoomed region, in cells).
//
// Big grids are drawn as density tiles (fraction kept, or fraction disagreeing, per pixel);
// zooming in (mouse wheel, drag to pan, double-click to reset) reaches exact bits.

const W = 560;
const H = 360;

function bytesOf(value) {
  if (!value) return new Uint8Array(0);
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return new Uint8Array(0);
}

function bitAt(bytes, i) {
  return (bytes[i >> 3] >> (7 - (i & 7))) & 1;
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
  const value = (i) => (diff ? bitAt(a, i) ^ bitAt(b, i) : bitAt(a, i));
  let exact = rspan <= H && cspan <= W;
  if (exact) {
    // every pixel samples the one cell under it: exact bits
    for (let y = 0; y < H; y++) {
      const r = view.r0 + Math.floor((y * rspan) / H);
      for (let x = 0; x < W; x++) {
        const c = view.c0 + Math.floor((x * cspan) / W);
        paint(px, (y * W + x) * 4, value(r * cols + c), diff);
      }
    }
  } else {
    // every cell votes into the pixel bin it falls in: density tiles
    const on = new Float32Array(W * H);
    const all = new Float32Array(W * H);
    for (let r = view.r0; r < view.r1; r++) {
      const y = Math.min(H - 1, Math.floor(((r - view.r0) * H) / rspan));
      for (let c = view.c0; c < view.c1; c++) {
        const x = Math.min(W - 1, Math.floor(((c - view.c0) * W) / cspan));
        const k = y * W + x;
        on[k] += value(r * cols + c);
        all[k] += 1;
      }
    }
    for (let k = 0; k < W * H; k++) paint(px, k * 4, all[k] ? on[k] / all[k] : 0, diff, all[k] === 0);
  }
  ctx.putImageData(img, 0, 0);
  const what = exact ? "exact bits" : "density tiles";
  info.textContent =
    `${model.get("layer")} — ${rows}×${cols}, rows ${view.r0}–${view.r1}, cols ${view.c0}–${view.c1} ` +
    `(${what}; ${diff ? "red = masks disagree" : "dark = kept"}; wheel to zoom, drag to pan, double-click to reset)`;
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

function render({ model, el }) {
  el.classList.add("nasviz-mask");
  const canvas = document.createElement("canvas");
  canvas.width = W;
  canvas.height = H;
  const info = document.createElement("div");
  info.className = "nasviz-mask-info";
  el.append(canvas, info);
  const ctx = canvas.getContext("2d");
  let view = null;

  const reset = () => {
    view = { r0: 0, r1: Math.max(1, model.get("rows")), c0: 0, c1: Math.max(1, model.get("cols")) };
  };
  const redraw = () => {
    draw(ctx, model, view, info);
    model.set("window", [view.r0, view.r1, view.c0, view.c1]);
    model.save_changes();
  };
  const clamp = (lo, span, n) => Math.max(0, Math.min(lo, n - span));

  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const rows = model.get("rows");
    const cols = model.get("cols");
    const f = e.deltaY < 0 ? 0.5 : 2;
    const fy = e.offsetY / H;
    const fx = e.offsetX / W;
    const rspan = Math.max(1, Math.min(rows, Math.round((view.r1 - view.r0) * f)));
    const cspan = Math.max(1, Math.min(cols, Math.round((view.c1 - view.c0) * f)));
    const rc = view.r0 + fy * (view.r1 - view.r0);
    const cc = view.c0 + fx * (view.c1 - view.c0);
    const r0 = clamp(Math.round(rc - fy * rspan), rspan, rows);
    const c0 = clamp(Math.round(cc - fx * cspan), cspan, cols);
    view = { r0, r1: r0 + rspan, c0, c1: c0 + cspan };
    redraw();
  });
  let drag = null;
  canvas.addEventListener("mousedown", (e) => (drag = { x: e.offsetX, y: e.offsetY, v: { ...view } }));
  window.addEventListener("mouseup", () => (drag = null));
  canvas.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const rspan = drag.v.r1 - drag.v.r0;
    const cspan = drag.v.c1 - drag.v.c0;
    const r0 = clamp(drag.v.r0 - Math.round(((e.offsetY - drag.y) * rspan) / H), rspan, model.get("rows"));
    const c0 = clamp(drag.v.c0 - Math.round(((e.offsetX - drag.x) * cspan) / W), cspan, model.get("cols"));
    view = { r0, r1: r0 + rspan, c0, c1: c0 + cspan };
    redraw();
  });
  canvas.addEventListener("dblclick", () => {
    reset();
    redraw();
  });

  const onLayer = () => {
    reset();
    redraw();
  };
  model.on("change:layer", onLayer);
  model.on("change:rows", onLayer);
  model.on("change:cols", onLayer);
  model.on("change:bits", () => draw(ctx, model, view, info));
  model.on("change:other_bits", () => draw(ctx, model, view, info));
  model.on("change:mode", () => draw(ctx, model, view, info));
  reset();
  draw(ctx, model, view, info);
  return () => {
    model.off("change:layer", onLayer);
  };
}

export default { render };
