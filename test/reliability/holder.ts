// A child that holds an image open (not a test itself): it opens the file
// read-write, says `open`, then runs one command per stdin line and answers
// each on stdout: `w OFF BYTE` pwrites 4 KiB of BYTE at OFF and `r OFF`
// preads 4 KiB and answers its first byte; both answer `ok …` or the errno
// name. `q` closes the fd and exits.
//
// Invariant: the fd is opened once and used for every command, so a test
// can ask what an fd bound to a disk does after that disk was deleted.

import fs from 'node:fs'
import readline from 'node:readline'

function main(file: string): void {
  const fd = fs.openSync(file, 'r+')
  process.stdout.write('open\n')
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    const [cmd, a, b] = line.trim().split(' ')
    try {
      if (cmd === 'w') {
        fs.writeSync(fd, Buffer.alloc(4096, Number(b)), 0, 4096, Number(a))
        process.stdout.write('ok\n')
      } else if (cmd === 'r') {
        const buf = Buffer.alloc(4096)
        fs.readSync(fd, buf, 0, 4096, Number(a))
        process.stdout.write(`ok ${buf[0]}\n`)
      } else if (cmd === 'q') {
        fs.closeSync(fd)
        process.exit(0)
      }
    } catch (e) {
      process.stdout.write(`${(e as NodeJS.ErrnoException).code ?? 'ERROR'}\n`)
    }
  })
}

if (require.main === module) main(process.argv[2] ?? '')
