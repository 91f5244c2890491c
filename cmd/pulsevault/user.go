package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/mieweb/pulsevault/shared/identity/users"
)

const userUsage = `Usage: pulsevault user add ID [--name "Display Name"] [--roles r1,r2]
       pulsevault user passwd ID
       pulsevault user disable ID | enable ID
       pulsevault user list

Manages users.yaml, the accounts of the embedded OpenID provider
(IDENTITY_USERS_FILE; default PULSEVAULT_DATA_DIR/users.yaml). The password
is read from the terminal without echo (twice), or as one line from a
non-terminal standard input (scripts). A running provider sees the change
at the next sign-in.

  --users FILE   the users file (overrides IDENTITY_USERS_FILE)
`

func usersFile(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if f := os.Getenv("IDENTITY_USERS_FILE"); f != "" {
		return f
	}
	return filepath.Join(envOr("PULSEVAULT_DATA_DIR", "./.pulsevault"), "users.yaml")
}

func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, userUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: user needs a subcommand", errUsage)
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("users", "", "")
	name := fs.String("name", "", "")
	roles := fs.String("roles", "", "")
	var pos []string
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			return fmt.Errorf("%w: user %s: %v (run pulsevault user -h)", errUsage, sub, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	store := users.Open(usersFile(*file))
	needID := func() (string, error) {
		if len(pos) != 1 {
			return "", fmt.Errorf("%w: user %s needs exactly one user ID", errUsage, sub)
		}
		return pos[0], nil
	}
	switch sub {
	case "list":
		list, err := store.List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLES\tSTATE")
		for _, u := range list {
			state := "active"
			if u.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.ID, u.Name, strings.Join(u.Roles, ","), state)
		}
		return tw.Flush()
	case "add":
		id, err := needID()
		if err != nil {
			return err
		}
		pw, err := readPassword(stdin, stderr, "Password for "+id)
		if err != nil {
			return err
		}
		u := users.User{ID: id, Name: *name}
		if u.Name == "" {
			u.Name = id
		}
		for r := range strings.SplitSeq(*roles, ",") {
			if r = strings.TrimSpace(r); r != "" {
				u.Roles = append(u.Roles, r)
			}
		}
		if err := store.Add(u, pw); err != nil {
			return fmt.Errorf("user add: %w", err)
		}
		fmt.Fprintf(stdout, "Added %s to %s.\n", id, store.Path())
	case "passwd":
		id, err := needID()
		if err != nil {
			return err
		}
		pw, err := readPassword(stdin, stderr, "New password for "+id)
		if err != nil {
			return err
		}
		if err := store.SetPassword(id, pw); err != nil {
			return fmt.Errorf("user passwd: %w", err)
		}
		fmt.Fprintf(stdout, "Changed the password of %s.\n", id)
	case "disable", "enable":
		id, err := needID()
		if err != nil {
			return err
		}
		if err := store.SetDisabled(id, sub == "disable"); err != nil {
			return fmt.Errorf("user %s: %w", sub, err)
		}
		fmt.Fprintf(stdout, "%s is %sd; its refresh tokens stop working at their next use.\n", id, sub)
	default:
		fmt.Fprint(stderr, userUsage)
		return fmt.Errorf("%w: unknown user subcommand %q", errUsage, sub)
	}
	return nil
}

// readPassword reads a password without echo from a terminal (asked
// twice), or one line from other input.
func readPassword(stdin io.Reader, stderr io.Writer, prompt string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "%s: ", prompt)
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the two passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
