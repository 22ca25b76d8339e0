/** A page of a list capability: Plinth's list responses all have one. */
export interface Page {
  nextPageToken: string;
}

/**
 * Iterates the pages of a list capability: `fetchPage("")` first, then
 * `fetchPage(nextPageToken)` until a page's next_page_token is empty. Stop
 * early with `break`; nothing more is fetched.
 *
 *     for await (const page of pages((pageToken) =>
 *       plinth.customers.listCustomers({ pageSize: 100, pageToken }))) { ... }
 */
export async function* pages<P extends Page>(fetchPage: (pageToken: string) => Promise<P>): AsyncGenerator<P, void, undefined> {
  let token = "";
  const seen = new Set<string>();
  for (;;) {
    const page = await fetchPage(token);
    yield page;
    token = page.nextPageToken;
    if (token === "") {
      return;
    }
    if (seen.has(token)) {
      throw new Error(`plinth: the server returned page token ${JSON.stringify(token)} twice; stopping`);
    }
    seen.add(token);
  }
}

/**
 * Iterates the items of every page of a list capability, fetching each page
 * when the previous one is used up.
 *
 *     for await (const customer of paginate(
 *       (pageToken) => plinth.customers.listCustomers({ pageSize: 100, pageToken }),
 *       (page) => page.customers)) { ... }
 */
export async function* paginate<P extends Page, T>(
  fetchPage: (pageToken: string) => Promise<P>,
  items: (page: P) => T[],
): AsyncGenerator<T, void, undefined> {
  for await (const page of pages(fetchPage)) {
    yield* items(page);
  }
}

/** Collects an async iterable into an array (Array.fromAsync where Node lacks it). */
export async function toArray<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
  }
  return out;
}
