package e2e

import (
	"bufio"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevModeCurlWorksAsPrinted runs `plinth dev` and then the curl command
// it prints, exactly as printed, through a shell.
func TestDevModeCurlWorksAsPrinted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	d := runDev(t)
	text := d.banner
	if !strings.Contains(text, "loopback only") || !strings.Contains(text, "http://127.0.0.1:") {
		t.Errorf("the banner should give the URL and say it listens on loopback only:\n%s", text)
	}

	// The curl command: from the line starting with "curl" to the first line
	// that does not end in a backslash.
	var curl []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if len(curl) == 0 && !strings.HasPrefix(line, "curl ") {
			continue
		}
		curl = append(curl, line)
		if !strings.HasSuffix(line, `\`) {
			break
		}
	}
	if len(curl) == 0 {
		t.Fatalf("no curl command in the banner:\n%s", text)
	}
	out, err := exec.Command("bash", "-c", strings.Join(curl, "\n")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"state":"CUSTOMER_STATE_PENDING"`) {
		t.Fatalf("the printed curl command failed (%v):\n%s\n%s", err, strings.Join(curl, "\n"), out)
	}

	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Errorf("plinth dev exited with %v after SIGINT", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("plinth dev did not stop within 30s of SIGINT")
	}
}

func TestDevModeRefusesToListenBeyondLoopback(t *testing.T) {
	out, err := exec.Command(binary, "dev", "--listen", "0.0.0.0:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "loopback only") {
		t.Fatalf("plinth dev on 0.0.0.0: %v\n%s", err, out)
	}
}

// devProcess is a running `plinth dev`.
type devProcess struct {
	cmd    *exec.Cmd
	banner string     // what it printed, up to the line that says how to stop
	exited chan error // receives Wait's result
}

// runDev runs `plinth dev` on a free port, waits for its banner, and kills it
// when the test ends if it is still running.
func runDev(t *testing.T) *devProcess {
	t.Helper()
	cmd := exec.Command(binary, "dev", "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devProcess{cmd: cmd, exited: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		close(done)
		d.exited <- err
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Stop with") {
				banner <- b.String()
			}
		}
	}()
	select {
	case d.banner = <-banner:
	case err := <-d.exited:
		t.Fatalf("plinth dev exited: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("plinth dev printed no banner within 60s\n%s", logs)
	}
	return d
}
