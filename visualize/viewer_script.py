"""The viewer page's script: at every zoom or pan, redraw only what is in view, at most one
thing per pixel column (the rules of ``viewer_lod``, which draws the first view in Python).

Why in the page: a zoom must not wait for Python, and the page works from disk with no server.
The script decodes the packed data once (base64, then the browser's own ``DecompressionStream``,
then the byte shuffle undone into typed arrays), and on each ``plotly_relayout`` (and each
legend click) it finds each lane's segments in view by binary search, keeps those a pixel
wide or more as segments (at most ``maxBoxes``), merges the rest into one image per panel
(per lane and pixel column: the kinds' shares, blended; opacity the busy share), keeps each
memory line's first, lowest, highest and last point per bucket of pixels, rewrites the
panels' notes, and hands all of it to plotly in one ``Plotly.react``. ``window.pebblesimLod``
exposes the state for the tests and the benchmark: ``ready`` (decoded), ``idle`` (the last
redraw done), ``renders`` and ``lastRender`` (its timings).
"""

SCRIPT = r"""
(function () {
  var gd = document.getElementById('{plot_id}');
  var spec = JSON.parse(document.getElementById('{plot_id}-data').textContent);
  var lod = window.pebblesimLod = {
    firstDraw: performance.now(), renders: 0, lastRender: null, error: null, spec: spec
  };
  var TYPES = {f4: Float32Array, u1: Uint8Array, i1: Int8Array, u2: Uint16Array,
               i2: Int16Array, u4: Uint32Array, i4: Int32Array};

  function decode(b64) {
    var text = atob(b64), bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Response(stream).arrayBuffer();
  }

  function column(buffer, entry) {
    var Type = TYPES[entry.dtype], size = Type.BYTES_PER_ELEMENT, n = entry.count;
    var planes = new Uint8Array(buffer, entry.offset, size * n), out = new Type(n);
    var bytes = new Uint8Array(out.buffer);
    for (var b = 0; b < size; b++) {
      for (var i = 0, at = b * n; i < n; i++) bytes[i * size + b] = planes[at + i];
    }
    return out;
  }

  function prepare(layer, columns) {
    var p = layer.panel + '.';
    layer.lane = columns[p + 'lane']; layer.kind = columns[p + 'kind'];
    layer.start = columns[p + 'start']; layer.end = columns[p + 'end'];
    layer.values = {};
    layer.fields.forEach(function (name) { layer.values[name] = columns[p + name]; });
    var lanes = layer.laneY.length, n = layer.start.length;
    layer.offsets = new Int32Array(lanes + 1);
    layer.longest = new Float64Array(lanes);
    for (var i = 0; i < n; i++) {
      var l = layer.lane[i], d = layer.end[i] - layer.start[i];
      layer.offsets[l + 1]++;
      if (d > layer.longest[l]) layer.longest[l] = d;
    }
    for (var l2 = 0; l2 < lanes; l2++) layer.offsets[l2 + 1] += layer.offsets[l2];
    var widths = [];
    layer.kinds.forEach(function (k) { if (widths.indexOf(k.width) < 0) widths.push(k.width); });
    widths.sort(function (a, b) { return b - a; });
    layer.widths = widths;
    layer.group = layer.kinds.map(function (k) { return widths.indexOf(k.width); });
  }

  lod.ready = decode(spec.blob).then(function (buffer) {
    var columns = {};
    for (var name in spec.columns) columns[name] = column(buffer, spec.columns[name]);
    spec.layers.forEach(function (layer) { prepare(layer, columns); });
    spec.memory.time = columns['memory.time'];
    spec.memory.value = columns['memory.value'];
    lod.decoded = performance.now();
  });

  function fmt(n) { return n.toLocaleString('en-US'); }

  function note(noun, visible, merged) {
    if (!visible) return 'no ' + noun + ' in view';
    if (!merged) return 'each of the ' + fmt(visible) + ' ' + noun + ' in view drawn';
    if (merged === visible) {
      return 'aggregated per pixel: ' + fmt(visible) + ' ' + noun + ' · zoom in for each';
    }
    return fmt(visible - merged) + ' drawn, ' + fmt(merged) + ' under a pixel wide aggregated';
  }

  function plan(layer, t0, t1, columns, shown) {
    var pixel = (t1 - t0) / columns, visible = [], wide = 0;
    var start = layer.start, end = layer.end, kind = layer.kind;
    for (var l = 0; l < layer.laneY.length; l++) {
      var lo = layer.offsets[l], hi = layer.offsets[l + 1], from = t0 - layer.longest[l];
      while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (start[mid] < from) lo = mid + 1; else hi = mid;
      }
      for (var i = lo; i < layer.offsets[l + 1] && start[i] < t1; i++) {
        if (end[i] > t0 && shown[kind[i]]) {
          visible.push(i);
          if (end[i] - start[i] >= pixel) wide++;
        }
      }
    }
    var keepWide = wide <= spec.maxBoxes, detail = [], narrow = [];
    for (var j = 0; j < visible.length; j++) {
      var k = visible[j];
      if (keepWide && end[k] - start[k] >= pixel) detail.push(k); else narrow.push(k);
    }
    return {detail: detail, narrow: narrow, visible: visible.length};
  }

  // per lane, width group and pixel column: [share, share * r, share * g, share * b]
  function shares(layer, narrow, t0, t1, columns) {
    var groups = layer.widths.length, pixel = (t1 - t0) / columns;
    var acc = new Float32Array(layer.laneY.length * groups * columns * 4);
    for (var j = 0; j < narrow.length; j++) {
      var i = narrow[j], k = layer.kind[i], rgb = layer.kinds[k].rgb;
      var xs = Math.min(Math.max((layer.start[i] - t0) / pixel, 0), columns);
      var xe = Math.min(Math.max((layer.end[i] - t0) / pixel, 0), columns);
      var base = (layer.lane[i] * groups + layer.group[k]) * columns;
      for (var c = Math.floor(xs); c < xe && c < columns; c++) {
        var part = Math.min(xe, c + 1) - Math.max(xs, c);
        if (part <= 0) continue;
        var at = (base + c) * 4;
        acc[at] += part; acc[at + 1] += part * rgb[0];
        acc[at + 2] += part * rgb[1]; acc[at + 3] += part * rgb[2];
      }
    }
    return acc;
  }

  function bandRows(centre, width, height) {
    var first = Math.floor(centre - width / 2 + 0.5);
    var stop = Math.max(Math.floor(centre + width / 2 + 0.5), first + 1);
    return [Math.max(first, 0), Math.min(stop, height)];
  }

  function image(layer, acc, columns, height, yRange) {
    var rgba = new Float32Array(columns * height * 4), groups = layer.widths.length;
    var bottom = yRange[0], top = yRange[1];
    for (var g = 0; g < groups; g++) {
      for (var l = 0; l < layer.laneY.length; l++) {
        var band = bandRows((layer.laneY[l] - top) / (bottom - top) * height,
                            layer.widths[g], height);
        var base = (l * groups + g) * columns * 4;
        for (var c = 0; c < columns; c++) {
          var s = acc[base + c * 4];
          if (!(s > spec.idle)) continue;
          var a = Math.min(Math.max(s, spec.minAlpha), 1);
          var r = acc[base + c * 4 + 1] / s, gr = acc[base + c * 4 + 2] / s,
              b = acc[base + c * 4 + 3] / s;
          for (var row = band[0]; row < band[1]; row++) {
            var at = (row * columns + c) * 4, under = rgba[at + 3], out = a + under * (1 - a);
            var keep = under * (1 - a);
            rgba[at] = (r * a + rgba[at] * keep) / out;
            rgba[at + 1] = (gr * a + rgba[at + 1] * keep) / out;
            rgba[at + 2] = (b * a + rgba[at + 2] * keep) / out;
            rgba[at + 3] = out;
          }
        }
      }
    }
    var canvas = document.createElement('canvas');
    canvas.width = columns; canvas.height = height;
    // a canvas kept in memory (not on the GPU): toDataURL then costs milliseconds, not seconds
    var context = canvas.getContext('2d', {willReadFrequently: true});
    var data = context.createImageData(columns, height);
    for (var p = 0; p < rgba.length; p++) data.data[p] = Math.round(rgba[p] * 255);
    context.putImageData(data, 0, 0);
    return canvas.toDataURL('image/png');
  }

  function hoverRow(layer, i) {
    return layer.hover.map(function (name) {
      if (name === 'row') return layer.laneRow[layer.lane[i]];
      if (name === 'start') return layer.start[i];
      if (name === 'end') return layer.end[i];
      if (name === 'duration') return layer.end[i] - layer.start[i];
      return layer.values[name][i];
    });
  }

  function title(layer, i) {
    return layer.kinds[layer.kind[i]].title.replace(/\{(\w+)\}/g, function (match, name) {
      return name === 'lane' ? layer.laneText[layer.lane[i]] : String(layer.values[name][i]);
    });
  }

  function drawLayer(layer, t0, t1, full, annotations) {
    var xa = full[layer.xaxis], ya = full[layer.yaxis];
    var columns = Math.max(1, Math.round(xa._length)), height = Math.max(1, Math.round(ya._length));
    var shown = layer.kinds.map(function (k, n) {  // not hidden by a legend click
      var visible = gd.data[layer.first + n].visible;
      return visible !== 'legendonly' && visible !== false;
    });
    var t = performance.now(), drawn = plan(layer, t0, t1, columns, shown);
    var times = {plan: performance.now() - t};
    var perKind = layer.kinds.map(function () { return []; });
    drawn.detail.forEach(function (i) { perKind[layer.kind[i]].push(i); });
    perKind.forEach(function (list, n) {
      var count = 4 * list.length, x = new Float32Array(count), y = new Float32Array(count);
      var custom = new Array(count), text = new Array(count);
      list.forEach(function (i, j) {  // start, middle, end (hovered), gap
        var s = layer.start[i], e = layer.end[i], lane = layer.laneY[layer.lane[i]];
        var row = hoverRow(layer, i), heading = title(layer, i);
        x[4 * j] = s; x[4 * j + 1] = (s + e) / 2; x[4 * j + 2] = e; x[4 * j + 3] = NaN;
        for (var q = 0; q < 4; q++) {
          y[4 * j + q] = lane; custom[4 * j + q] = row; text[4 * j + q] = heading;
        }
      });
      // an empty trace would leave the legend: one point that draws nothing keeps it there
      var line = gd.data[layer.first + n];
      line.x = count ? x : [NaN]; line.y = count ? y : [NaN];
      line.customdata = count ? custom : null; line.text = count ? text : null;
    });
    var img = gd.data[layer.first + layer.kinds.length];
    img.visible = drawn.narrow.length > 0;
    if (img.visible) {
      var pixel = (t1 - t0) / columns, yRange = ya.range, row = (yRange[0] - yRange[1]) / height;
      t = performance.now();
      var acc = shares(layer, drawn.narrow, t0, t1, columns);
      times.shares = performance.now() - t;
      t = performance.now();
      img.source = image(layer, acc, columns, height, yRange);
      times.image = performance.now() - t;
      img.x0 = t0 + pixel / 2; img.dx = pixel; img.y0 = yRange[1] + row / 2; img.dy = row;
    }
    annotations[layer.note].text = note(layer.noun, drawn.visible, drawn.narrow.length);
    return {drawn: drawn.detail.length, merged: drawn.narrow.length, visible: drawn.visible,
            ms: times};
  }

  function envelope(time, value, offset, count, t0, t1, buckets) {
    var lo = offset, hi = offset + count;
    while (lo < hi) { var m = (lo + hi) >> 1; if (time[m] <= t0) lo = m + 1; else hi = m; }
    var first = Math.max(lo - 1, offset);
    lo = offset; hi = offset + count;
    while (lo < hi) { var m2 = (lo + hi) >> 1; if (time[m2] < t1) lo = m2 + 1; else hi = m2; }
    var stop = Math.min(lo + 1, offset + count), keep = [];
    if (stop - first <= 4 * buckets) {
      for (var i = first; i < stop; i++) keep.push(i);
      return {keep: keep, collapsed: false};
    }
    var bucket = -1, open = -1, low = -1, high = -1, last = -1;
    function flush() {
      var picks = [open, low, high, last].sort(function (a, b) { return a - b; });
      for (var q = 0; q < 4; q++) if (!q || picks[q] !== picks[q - 1]) keep.push(picks[q]);
    }
    for (var j = first; j < stop; j++) {
      var b = Math.min(Math.max(Math.floor((time[j] - t0) / (t1 - t0) * buckets), 0), buckets - 1);
      if (b !== bucket) {
        if (bucket >= 0) flush();
        bucket = b; open = low = high = j;
      }
      if (value[j] < value[low]) low = j;
      if (value[j] > value[high]) high = j;
      last = j;
    }
    flush();
    return {keep: keep, collapsed: true};
  }

  function drawMemory(t0, t1, full, annotations) {
    var memory = spec.memory, columns = Math.max(1, Math.round(full.xaxis._length));
    var buckets = Math.max(1, Math.min(columns,
      Math.floor(spec.memoryPoints / (4 * Math.max(memory.lines.length, 1)))));
    var collapsed = false;
    memory.lines.forEach(function (line) {
      var kept = envelope(memory.time, memory.value, line.offset, line.count, t0, t1, buckets);
      var x = new Float32Array(kept.keep.length), y = new Float32Array(kept.keep.length);
      kept.keep.forEach(function (i, j) { x[j] = memory.time[i]; y[j] = memory.value[i]; });
      gd.data[line.trace].x = x; gd.data[line.trace].y = y;
      collapsed = collapsed || kept.collapsed;
    });
    annotations[memory.note].text = collapsed ? 'lines keep the first, lowest, highest, last ' +
      'point per ' + Math.max(1, Math.round(columns / buckets)) + ' px' : '';
  }

  var drawnKey = null, force = false;

  function render() {
    var full = gd._fullLayout, t0 = full.xaxis.range[0], t1 = full.xaxis.range[1];
    var key = JSON.stringify([full.xaxis.range, full.xaxis._length].concat(
      spec.layers.map(function (layer) {
        return [full[layer.yaxis].range, full[layer.yaxis]._length];
      })));
    if (key === drawnKey && !force) return Promise.resolve();
    drawnKey = key; force = false;
    var began = performance.now(), annotations = gd.layout.annotations, counts = {};
    spec.layers.forEach(function (layer) {
      counts[layer.panel] = drawLayer(layer, t0, t1, full, annotations);
    });
    drawMemory(t0, t1, full, annotations);
    gd.layout.datarevision = (gd.layout.datarevision || 0) + 1;
    var computed = performance.now();
    return Plotly.react(gd, gd.data, gd.layout).then(function () {
      lod.renders++;
      lod.lastRender = {compute: computed - began, total: performance.now() - began,
                        range: [t0, t1], counts: counts};
    });
  }

  var chain = Promise.resolve(), pending = false;
  function request() {
    if (pending) return lod.idle;
    pending = true;
    lod.idle = chain = chain.then(function () { return lod.ready; }).then(function () {
      return new Promise(function (resolve) { requestAnimationFrame(function () { resolve(); }); });
    }).then(function () {
      pending = false;
      return render();
    }).catch(function (error) {
      pending = false;
      lod.error = String(error && error.stack || error);
    });
    return lod.idle;
  }
  lod.request = request;
  // the split of one window, for the tests: counts, and per lane and pixel column the share
  // of the column the merged segments cover (all kinds together)
  lod.plan = function (panel, t0, t1, columns) {
    var layer = spec.layers.filter(function (l) { return l.panel === panel; })[0];
    var drawn = plan(layer, t0, t1, columns, layer.kinds.map(function () { return true; }));
    var acc = shares(layer, drawn.narrow, t0, t1, columns), groups = layer.widths.length;
    var busy = layer.laneY.map(function (y, l) {
      var row = new Array(columns).fill(0);
      for (var g = 0; g < groups; g++) {
        for (var c = 0; c < columns; c++) row[c] += acc[((l * groups + g) * columns + c) * 4];
      }
      return row;
    });
    return {detail: drawn.detail.length, merged: drawn.narrow.length, visible: drawn.visible,
            busy: busy};
  };
  lod.idle = lod.ready;

  // the first view was drawn in Python for a plot area ``drawnColumns`` wide; plotly's legend
  // may have taken some of it: then draw it again for the pixels there are
  lod.ready.then(function () {
    if (Math.round(gd._fullLayout.xaxis._length) !== spec.drawnColumns) request();
  });
  gd.on('plotly_relayout', function () { request(); });
  gd.on('plotly_restyle', function (change) {
    if (change && change[0] && 'visible' in change[0]) { force = true; request(); }
  });
})();
"""

__all__ = ["SCRIPT"]
