import { open } from "node:fs/promises";

/** fsync of a file or a directory (its entries) by path, on libuv's thread pool. */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
