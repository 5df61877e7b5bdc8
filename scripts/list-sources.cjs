// Lists the .cpp files directly inside each given folder (not recursing), for binding.gyp and
// CMakeLists.txt, so adding a source file never needs a build-file edit. ISA folders
// (native/cpu/avx2, native/cpu/avx512) are separate arguments because they get their own flags.
const fs = require('node:fs');
const path = require('node:path');
const files = [];
for (const dir of process.argv.slice(2)) {
  for (const name of fs.readdirSync(dir).sort()) {
    if (name.endsWith('.cpp')) files.push(path.posix.join(dir, name));
  }
}
process.stdout.write(files.join(' '));
