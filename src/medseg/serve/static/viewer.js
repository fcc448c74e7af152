// The medseg job viewer: the job's image with its label map on niivue (same origin only).
import { Niivue } from "/static/niivue/niivue.js";

const job = document.querySelector("main").dataset.job;
const status = document.getElementById("status");
const PALETTE = [
  [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
  [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
];

async function detail(response) {
  try { return (await response.json()).detail; } catch { return response.statusText; }
}

// Whether the job can be shown: asks for the key when there is no session yet.
async function jobReady() {
  const response = await fetch(`/jobs/${job}`);
  if (response.status === 401) {
    document.getElementById("login").hidden = false;
    status.textContent = "";
    return false;
  }
  if (!response.ok) {
    status.textContent = await detail(response);
    return false;
  }
  const info = await response.json();
  if (info.state !== "done") {
    status.textContent = `job ${info.state}` + (info.error ? `: ${info.error}` : "...");
    if (info.state === "queued" || info.state === "running") setTimeout(start, 2000);
    return false;
  }
  return true;
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = new FormData();
  body.append("key", document.getElementById("key").value);
  const response = await fetch("/session", { method: "POST", body });
  if (response.ok) {
    document.getElementById("login").hidden = true;
    start();
  } else {
    document.getElementById("login-error").textContent = await detail(response);
  }
});

// The label volume's colour table: one colour per label value, hidden labels transparent.
function labelColours(names, hidden) {
  const values = Object.keys(names).map(Number).sort((a, b) => a - b);
  const table = { R: [], G: [], B: [], A: [], I: [], labels: [] };
  values.forEach((value, k) => {
    const [r, g, b] = PALETTE[(k + PALETTE.length - 1) % PALETTE.length];
    table.R.push(r); table.G.push(g); table.B.push(b);
    table.A.push(value === 0 || hidden.has(value) ? 0 : 255);
    table.I.push(value);
    table.labels.push(names[value]);
  });
  return table;
}

async function start() {
  if (!(await jobReady())) return;
  const names = await (await fetch(`/jobs/${job}/view/labels.json`)).json();
  document.getElementById("viewer").hidden = false; // niivue sizes itself to a visible canvas
  const nv = new Niivue({ backColor: [0, 0, 0, 1], show3Dcrosshair: true });
  await nv.attachTo("gl");
  await nv.loadVolumes([
    { url: `/jobs/${job}/view/image`, name: "image.nii.gz" },
    { url: `/jobs/${job}/view/labels`, name: "labels.nii.gz", opacity: 0.5 },
  ]);
  nv.setSliceType(nv.sliceTypeMultiplanar);
  const [image, labels] = nv.volumes;
  const hidden = new Set();
  const recolour = () => {
    labels.setColormapLabel(labelColours(names, hidden));
    nv.updateGLVolume();
  };
  recolour();

  const calMin = document.getElementById("cal-min");
  const calMax = document.getElementById("cal-max");
  calMin.value = image.cal_min; calMax.value = image.cal_max;
  const applyWindow = () => {
    image.cal_min = Number(calMin.value); image.cal_max = Number(calMax.value);
    nv.updateGLVolume();
  };
  calMin.addEventListener("change", applyWindow);
  calMax.addEventListener("change", applyWindow);
  document.getElementById("opacity").addEventListener("input", (event) => {
    nv.setOpacity(1, Number(event.target.value));
  });

  const list = document.getElementById("labels");
  const colours = labelColours(names, new Set());
  colours.I.forEach((value, k) => {
    if (value === 0) return;
    const item = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.checked = true; box.dataset.label = value;
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(value); else hidden.add(value);
      recolour();
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${colours.R[k]},${colours.G[k]},${colours.B[k]})`;
    item.append(box, swatch, document.createTextNode(names[value]));
    list.append(item);
  });

  const readout = document.getElementById("readout");
  nv.onLocationChange = (location) => {
    const [x, y, z] = location.vox;
    const value = image.getValue(x, y, z);
    const label = Math.round(labels.getValue(x, y, z));
    readout.textContent = `voxel ${x} ${y} ${z}   value ${Number(value).toPrecision(5)}   ` +
      `label ${label} (${names[label] ?? "?"})`;
  };
  document.getElementById("title").textContent = `job ${job}`;
  status.textContent = "";
  globalThis.medsegViewer = nv;
  document.body.dataset.ready = "yes";
}

start().catch((error) => { status.textContent = `viewer error: ${error}`; });
