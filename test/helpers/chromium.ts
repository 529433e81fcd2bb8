/**
 * Headless Chromium for the tests that render HTML reports (perf's and tune's): find the binary,
 * load a file and return the DOM after the page's scripts ran. CI installs Chromium
 * (scripts/install-system-deps.sh).
 */
import { execFile, execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

/** How to install Chromium on Debian, for messages. */
export const CHROMIUM_INSTALL = 'apt-get update && apt-get install -y chromium';

/** The Chromium binary on PATH, or null. */
export function findChromium(): string | null {
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      const path = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
      if (path !== '') return path;
    } catch {
      // not this one
    }
  }
  return null;
}

/** Load `file` in headless Chromium (profile in `profile`) and return the DOM after its scripts ran. */
export function dumpDom(chromium: string, file: string, profile: string): Promise<string> {
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--disable-extensions',
    `--user-data-dir=${profile}`,
    '--dump-dom',
    pathToFileURL(file).href,
  ];
  return new Promise((resolve, reject) => {
    execFile(chromium, args, { timeout: 15_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`chromium failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}
