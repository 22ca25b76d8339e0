package migrate_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/internal/migrate"
	"plinth.dev/plinth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func sqlFile(up, down string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte("-- +goose Up\n" + up + "\n\n-- +goose Down\n" + down + "\n")}
}

// twoMigrations is a tiny domain, "shop", in two versions.
func twoMigrations() fstest.MapFS {
	return fstest.MapFS{
		"00001_items.sql": sqlFile(
			`CREATE TABLE shop.items (id text PRIMARY KEY);`,
			`DROP TABLE shop.items;`),
		"00002_prices.sql": sqlFile(
			`ALTER TABLE shop.items ADD COLUMN price bigint NOT NULL DEFAULT 0;`,
			`ALTER TABLE shop.items DROP COLUMN price;`),
	}
}

func names(applied []migrate.Applied) []string {
	var out []string
	for _, a := range applied {
		out = append(out, a.Name)
	}
	return out
}

func TestUpAppliesPendingMigrationsOnce(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	applied, err := migrate.Up(t.Context(), pool, "shop", twoMigrations(), log)
	if err != nil {
		t.Fatalf("first Up: %v", err)
	}
	if got, want := strings.Join(names(applied), ","), "00001_items.sql,00002_prices.sql"; got != want {
		t.Errorf("first Up applied %s, want %s", got, want)
	}
	for i, a := range applied {
		if a.Version != int64(i+1) {
			t.Errorf("applied[%d].Version = %d, want %d", i, a.Version, i+1)
		}
	}
	for _, want := range []string{"file=00001_items.sql", "file=00002_prices.sql", "domain=shop", "version=2"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// The migrations did run, in the domain's schema.
	if _, err := pool.Exec(t.Context(), "INSERT INTO shop.items (id, price) VALUES ('a', 100)"); err != nil {
		t.Errorf("migrated table unusable: %v", err)
	}

	again, err := migrate.Up(t.Context(), pool, "shop", twoMigrations(), log)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if len(again) != 0 {
		t.Errorf("second Up applied %v, want nothing", names(again))
	}

	// A third migration, added later, is the only one applied next time.
	three := twoMigrations()
	three["00003_stock.sql"] = sqlFile(`ALTER TABLE shop.items ADD COLUMN stock int NOT NULL DEFAULT 0;`, `ALTER TABLE shop.items DROP COLUMN stock;`)
	later, err := migrate.Up(t.Context(), pool, "shop", three, nil)
	if err != nil {
		t.Fatalf("Up with a new migration: %v", err)
	}
	if got := strings.Join(names(later), ","); got != "00003_stock.sql" {
		t.Errorf("Up with a new migration applied %s, want 00003_stock.sql", got)
	}
}

func TestUpKeepsTheVersionTableInTheDomainSchema(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	if _, err := migrate.Up(t.Context(), pool, "shop", twoMigrations(), nil); err != nil {
		t.Fatal(err)
	}
	var versions []int64
	rows, err := pool.Query(t.Context(), "SELECT version_id FROM shop.schema_migrations WHERE is_applied ORDER BY version_id")
	if err != nil {
		t.Fatalf("read shop.schema_migrations: %v", err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// goose records version 0 when it creates the table.
	if len(versions) != 3 || versions[0] != 0 || versions[1] != 1 || versions[2] != 2 {
		t.Errorf("shop.schema_migrations holds versions %v, want [0 1 2]", versions)
	}
	var elsewhere int
	if err := pool.QueryRow(t.Context(),
		"SELECT count(*) FROM pg_tables WHERE tablename IN ('schema_migrations', 'goose_db_version') AND schemaname <> 'shop'").Scan(&elsewhere); err != nil {
		t.Fatal(err)
	}
	if elsewhere != 0 {
		t.Errorf("found %d version tables outside the shop schema", elsewhere)
	}
}

// Two domains in one database keep separate histories: version 1 of one
// is not version 1 of the other.
func TestDomainsMigrateIndependently(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	if _, err := migrate.Up(t.Context(), pool, "shop", twoMigrations(), nil); err != nil {
		t.Fatal(err)
	}
	other := fstest.MapFS{"00001_users.sql": sqlFile(`CREATE TABLE accounts.users (id text PRIMARY KEY);`, `DROP TABLE accounts.users;`)}
	applied, err := migrate.Up(t.Context(), pool, "accounts", other, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(applied), ","); got != "00001_users.sql" {
		t.Errorf("accounts applied %s, want 00001_users.sql", got)
	}
}

func TestStatusReportsAppliedAndPending(t *testing.T) {
	t.Parallel()
	pool := newPool(t)

	// Before anything: all pending, and Status writes nothing.
	before, err := migrate.Status(t.Context(), pool, "shop", twoMigrations())
	if err != nil {
		t.Fatalf("Status before Up: %v", err)
	}
	if len(before) != 2 || !before[0].Pending() || !before[1].Pending() {
		t.Errorf("Status before Up = %+v, want two pending", before)
	}
	var schemaExists bool
	if err := pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'shop')").Scan(&schemaExists); err != nil {
		t.Fatal(err)
	}
	if schemaExists {
		t.Error("Status created the domain's schema; it must not write")
	}

	start := time.Now()
	if _, err := migrate.Up(t.Context(), pool, "shop", fstest.MapFS{"00001_items.sql": twoMigrations()["00001_items.sql"]}, nil); err != nil {
		t.Fatal(err)
	}
	after, err := migrate.Status(t.Context(), pool, "shop", twoMigrations())
	if err != nil {
		t.Fatalf("Status after Up: %v", err)
	}
	if len(after) != 2 {
		t.Fatalf("Status after Up returned %d migrations, want 2", len(after))
	}
	first, second := after[0], after[1]
	if first.Version != 1 || first.Name != "00001_items.sql" || first.Pending() {
		t.Errorf("first = %+v, want version 1, 00001_items.sql, applied", first)
	}
	if first.AppliedAt.Location() != time.UTC {
		t.Errorf("AppliedAt is in %v, want UTC", first.AppliedAt.Location())
	}
	// The server's clock may differ a little from ours.
	if d := first.AppliedAt.Sub(start); d < -time.Minute || d > time.Minute {
		t.Errorf("AppliedAt = %v, want about %v", first.AppliedAt, start)
	}
	if second.Version != 2 || second.Name != "00002_prices.sql" || !second.Pending() {
		t.Errorf("second = %+v, want version 2, 00002_prices.sql, pending", second)
	}
}

func TestUpStopsAtABrokenMigrationAndKeepsEarlierOnes(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	broken := twoMigrations()
	broken["00002_prices.sql"] = sqlFile(`ALTER TABLE shop.no_such_table ADD COLUMN price bigint;`, `SELECT 1;`)
	broken["00003_stock.sql"] = sqlFile(`ALTER TABLE shop.items ADD COLUMN stock int;`, `SELECT 1;`)

	applied, err := migrate.Up(t.Context(), pool, "shop", broken, nil)
	if err == nil {
		t.Fatal("Up with a broken migration succeeded")
	}
	for _, want := range []string{"shop", "00002_prices.sql"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if got := strings.Join(names(applied), ","); got != "00001_items.sql" {
		t.Errorf("Up reported applying %s, want 00001_items.sql", got)
	}

	status, err := migrate.Status(t.Context(), pool, "shop", broken)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 3 || status[0].Pending() || !status[1].Pending() || !status[2].Pending() {
		t.Errorf("Status = %+v, want 1 applied, 2 and 3 pending", status)
	}
	// Nothing ran after the broken migration.
	var hasStock bool
	if err := pool.QueryRow(t.Context(),
		"SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'items' AND column_name = 'stock')").Scan(&hasStock); err != nil {
		t.Fatal(err)
	}
	if hasStock {
		t.Error("migration 3 ran after migration 2 failed")
	}

	// Once fixed, Up carries on from there.
	applied, err = migrate.Up(t.Context(), pool, "shop", twoMigrations(), nil)
	if err != nil {
		t.Fatalf("Up after the fix: %v", err)
	}
	if got := strings.Join(names(applied), ","); got != "00002_prices.sql" {
		t.Errorf("Up after the fix applied %s, want 00002_prices.sql", got)
	}
}

// Several processes (gateway replicas) starting at once all run Up: each
// migration is applied exactly once and none of them fails.
func TestConcurrentUpAppliesEachMigrationOnce(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	slow := fstest.MapFS{
		// Slow enough that the runners overlap.
		"00001_items.sql": sqlFile(`SELECT pg_sleep(0.5); CREATE TABLE shop.items (id text PRIMARY KEY);`, `DROP TABLE shop.items;`),
		"00002_log.sql": sqlFile(`CREATE TABLE shop.runs (n int);
INSERT INTO shop.runs VALUES (1);`, `DROP TABLE shop.runs;`),
	}

	const runners = 4
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total []string
	)
	for range runners {
		// A pool each, as separate processes would have.
		pool, err := pgxpool.New(t.Context(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			applied, err := migrate.Up(ctx, pool, "shop", slow, nil)
			if err != nil {
				t.Errorf("Up: %v", err)
			}
			mu.Lock()
			total = append(total, names(applied)...)
			mu.Unlock()
		})
	}
	wg.Wait()

	if len(total) != 2 {
		t.Errorf("%d runners applied %v between them, want each migration once", runners, total)
	}
	check, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	var runs int
	if err := check.QueryRow(t.Context(), "SELECT count(*) FROM shop.runs").Scan(&runs); err != nil {
		t.Fatal(err)
	}
	if runs != 1 {
		t.Errorf("migration 2 ran %d times, want 1", runs)
	}
}

func TestRefusesMalformedDomainNames(t *testing.T) {
	t.Parallel()
	// No database needed: the name is checked first.
	for _, domain := range []string{"", "Shop", "shop; DROP TABLE x", `sh"op`, "1shop"} {
		if _, err := migrate.Up(context.Background(), nil, domain, twoMigrations(), nil); err == nil {
			t.Errorf("Up accepted domain %q", domain)
		}
		if _, err := migrate.Status(context.Background(), nil, domain, twoMigrations()); err == nil {
			t.Errorf("Status accepted domain %q", domain)
		}
	}
}

// A domain named like an SQL keyword still works: its names are quoted.
func TestDomainNamedLikeAKeyword(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	files := fstest.MapFS{"00001_t.sql": sqlFile(`CREATE TABLE "order".lines (id int);`, `DROP TABLE "order".lines;`)}
	if _, err := migrate.Up(t.Context(), pool, "order", files, nil); err != nil {
		t.Fatalf("Up: %v", err)
	}
	status, err := migrate.Status(t.Context(), pool, "order", files)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 1 || status[0].Pending() {
		t.Errorf("Status = %+v, want one applied", status)
	}
}
