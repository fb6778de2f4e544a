// Builds the console from console/src into web/assets/ with esbuild: one
// minified ES module (console.js) and one stylesheet (console.css).
// tools/embed-web.sh gives them fingerprinted names at `make` time, so the
// bundle is deliberately a single file: a chunk imported by another chunk
// would keep its unfingerprinted name.
//
//   node console/build.mjs          write web/assets/console.{js,css}
//   node console/build.mjs --check  exit 1 if the committed files differ
//                                   from a fresh build (stale bundle)
//
// The output is committed, so `make` needs neither node nor esbuild; the
// build itself runs offline from package-lock.json (`make console`).
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'web/assets');

export async function buildConsole() {
  const common = {
    bundle: true,
    minify: true,
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
    absWorkingDir: ROOT,
  };
  const js = await esbuild.build({
    ...common,
    entryPoints: ['console/src/main.jsx'],
    format: 'esm',
    target: ['es2020'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    define: { 'process.env.NODE_ENV': '"production"' },
    outfile: 'console.js',
  });
  const css = await esbuild.build({
    ...common,
    entryPoints: ['console/src/console.css'],
    outfile: 'console.css',
  });
  return {
    'console.js': js.outputFiles[0].contents,
    'console.css': css.outputFiles[0].contents,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = await buildConsole();
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [name, bytes] of Object.entries(files)) {
    const dest = path.join(OUT, name);
    if (check) {
      const old = fs.existsSync(dest) ? fs.readFileSync(dest) : Buffer.alloc(0);
      if (!old.equals(Buffer.from(bytes))) {
        console.error(`console: web/assets/${name} is stale; run make console`);
        stale = 1;
      }
    } else {
      fs.mkdirSync(OUT, { recursive: true });
      fs.writeFileSync(dest, bytes);
      console.log(`console: web/assets/${name} ${bytes.length} bytes`);
    }
  }
  process.exit(stale);
}
