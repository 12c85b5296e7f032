/**
 * zod/mini comes without error messages ("Invalid input" for everything); these are zod's English ones, the
 * messages people see in configuration errors (`EDGE_SIGNIN_OUTBOX_MAX_EVENTS: Too big: expected number to be
 * <=1000000`), command answers (`Unrecognized key: "force"`) and the reasons a display or discovery gives for a
 * payload it rejects. Each module whose messages reach people imports this one, so the messages are set whichever
 * of them a program or a test loads first; ~2.7 KB of the bundle.
 */
import * as z from "zod/mini";
import { en } from "zod/locales";

// A program that uses edge-signin as a library may have chosen a locale of its own: keep it.
if (!z.config().localeError) z.config(en());
