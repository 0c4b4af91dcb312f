// The page's build: copy the ES modules and the vendored Leaflet into the Python package.
// No bundler: browsers load the modules as they are; the output is api/static/ (gitignored).
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "api", "static");
const leaflet = join(here, "node_modules", "leaflet", "dist");

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "vendor"), { recursive: true });
cpSync(join(here, "src"), out, { recursive: true });
cpSync(join(leaflet, "leaflet.js"), join(out, "vendor", "leaflet.js"));
cpSync(join(leaflet, "leaflet.css"), join(out, "vendor", "leaflet.css"));
cpSync(join(leaflet, "images"), join(out, "vendor", "images"), { recursive: true });
console.log(`page built into ${out}`);
