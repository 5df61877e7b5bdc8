// npm's install step: use the prebuilt binary for this platform if one loads, else build from
// source with node-gyp and say why. The prebuild is test-loaded in a child process (as
// node-gyp-build's own install step does), so a binary that cannot load here (an older glibc, a
// foreign libc) never takes the installer down; node-gyp-build picks the file by
// prebuilds/<platform>-<arch>/ and its tags (napi, glibc/musl).
// A local build (build/Release) that loads is kept. Otherwise a source checkout (a .git beside
// package.json) builds, as CI does after removing build/ to prove the source build; so does
// `npm install --build-from-source` or MOERUN_BUILD_FROM_SOURCE=1.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const target = `${process.platform}-${process.arch}`;

/** Test-loads what node-gyp-build picks: a local build/Release one, or (prebuildsOnly) a prebuild. */
function binaryLoads(prebuildsOnly) {
  const probe = `const load = require('node-gyp-build'); const file = load.resolve(${JSON.stringify(root)}); require(file); process.stdout.write(file);`;
  const env = { ...process.env };
  if (prebuildsOnly) env.PREBUILDS_ONLY = '1';
  else delete env.PREBUILDS_ONLY;
  const r = spawnSync(process.execPath, ['-e', probe], { cwd: root, env, encoding: 'utf8' });
  if (r.status === 0) return { ok: true, file: r.stdout };
  const first = (r.stderr || '').split('\n').find((l) => /Error/.test(l)) || `exit ${r.status}`;
  return { ok: false, why: first.replace(/^\S*Error: /, '').trim() };
}

function whyBuild() {
  if (process.env.npm_config_build_from_source === 'true' || process.env.MOERUN_BUILD_FROM_SOURCE === '1') return 'a build from source was asked for';
  if (fs.existsSync(path.join(root, 'build', 'Release', 'moerun.node')) && binaryLoads(false).ok) {
    console.log('moerun: using the local build build/Release/moerun.node');
    return null;
  }
  if (fs.existsSync(path.join(root, '.git'))) return 'this is a source checkout';
  if (!fs.existsSync(path.join(root, 'prebuilds', target))) return `the package has no prebuilt binary for ${target}`;
  const probe = binaryLoads(true);
  if (probe.ok) {
    console.log(`moerun: using the prebuilt binary ${path.relative(root, probe.file)}`);
    return null;
  }
  return `the prebuilt binary for ${target} does not load here (${probe.why})`;
}

const reason = whyBuild();
if (reason !== null) {
  console.log(`moerun: building the native addon from source because ${reason} (needs python3, make and a C++20 compiler; a few minutes)`);
  // npm passes its bundled node-gyp; a local one (devDependency) or one on PATH otherwise.
  let gyp = process.env.npm_config_node_gyp;
  if (!gyp) {
    try {
      gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
    } catch {
      gyp = undefined;
    }
  }
  const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: !gyp && process.platform === 'win32' });
  if (r.status !== 0) {
    let carried = [];
    try {
      carried = fs.readdirSync(path.join(root, 'prebuilds'));
    } catch {}
    console.error(`moerun: the source build failed (${r.error ? r.error.message : `exit ${r.status}`}); see above. This package carries prebuilt binaries for: ${carried.join(', ') || 'none'}.`);
    process.exit(1);
  }
}
