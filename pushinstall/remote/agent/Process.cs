// run_process: an argument LIST quoted by the Windows argv rules, UTF-8 output tails, a timeout
// that ends the whole process tree.
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Threading;

namespace Pushinstall.Agent
{
    /// <summary>Reads a stream to its end on its own thread, keeping only the last lines, so a
    /// chatty process never blocks on a full pipe and memory stays bounded.</summary>
    public class TailReader
    {
        private readonly Queue<string> lines = new Queue<string>();
        private readonly TextReader reader;
        private readonly int keep;
        private readonly Thread thread;

        public TailReader(TextReader reader, int keep)
        {
            this.reader = reader;
            this.keep = keep;
            thread = new Thread(Run);
            thread.IsBackground = true;
            thread.Start();
        }

        private void Run()
        {
            try
            {
                string line;
                while ((line = reader.ReadLine()) != null)
                {
                    lock (lines)
                    {
                        lines.Enqueue(line);
                        while (lines.Count > keep)
                        {
                            lines.Dequeue();
                        }
                    }
                }
            }
            catch (IOException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
        }

        public bool Wait(int milliseconds)
        {
            return thread.Join(milliseconds);
        }

        public string[] Tail()
        {
            lock (lines)
            {
                return lines.ToArray();
            }
        }
    }

    public static class ProcessOp
    {
        private static readonly char[] QuoteTriggers = { ' ', '\t', '\n', '\v', '"' };

        /// <summary>One argv entry quoted by the CommandLineToArgvW / C runtime rules
        /// (ops.windows_argv_quote is the Python twin).</summary>
        public static string Quote(string argument)
        {
            if (argument.Length > 0 && argument.IndexOfAny(QuoteTriggers) < 0)
            {
                return argument;
            }
            StringBuilder builder = new StringBuilder("\"");
            int backslashes = 0;
            foreach (char ch in argument)
            {
                if (ch == '\\')
                {
                    backslashes += 1;
                    continue;
                }
                builder.Append('\\', ch == '"' ? 2 * backslashes + 1 : backslashes);
                builder.Append(ch);
                backslashes = 0;
            }
            builder.Append('\\', 2 * backslashes);
            builder.Append('"');
            return builder.ToString();
        }

        public static string Join(string[] arguments)
        {
            string[] quoted = new string[arguments.Length];
            for (int i = 0; i < arguments.Length; i++)
            {
                quoted[i] = Quote(arguments[i]);
            }
            return string.Join(" ", quoted);
        }

        public const int LogTailLines = 50;
        private const int LogTailBytes = 1024 * 1024;

        /// <summary>The last `lines` lines of a log (UTF-8, as the lab reads it), read shared
        /// because the installer or its service may still hold it open; [] when it is not a
        /// file. Only the last MiB is read: installer logs grow to hundreds of MB.</summary>
        public static List<string> LogTail(string path, int lines)
        {
            if (!File.Exists(path))
            {
                return new List<string>();
            }
            byte[] bytes;
            long offset;
            using (FileStream stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            {
                offset = Math.Max(0, stream.Length - LogTailBytes);
                stream.Seek(offset, SeekOrigin.Begin);
                using (MemoryStream copy = new MemoryStream())
                {
                    stream.CopyTo(copy);
                    bytes = copy.ToArray();
                }
            }
            int start = 0;
            if (offset > 0)
            {
                // the first line read is a part of one: drop it
                int newline = Array.IndexOf(bytes, (byte)'\n');
                start = newline < 0 ? bytes.Length : newline + 1;
            }
            List<string> all = Probes.SplitLines(new UTF8Encoding(false, false).GetString(bytes, start, bytes.Length - start));
            return all.GetRange(Math.Max(0, all.Count - lines), Math.Min(lines, all.Count));
        }

        public static object Run(Args args)
        {
            string path = args.Str("path");
            string[] arguments = args.StrList("arguments");
            string workingDirectory = args.Str("working_directory", "");
            long timeoutS = args.Long("timeout_s", 3600);
            int tailLines = args.Int("tail_lines", 20);
            string logPath = args.Str("log_path", "");
            if (Path.IsPathRooted(path) && !File.Exists(path))
            {
                throw new OpException("NotFound", "no such executable: " + path);
            }
            if (workingDirectory != "" && !Directory.Exists(workingDirectory))
            {
                throw new OpException("NotFound", "no such working directory: " + workingDirectory);
            }
            string argumentLine = Join(arguments);
            string commandLine = "\"" + path + "\"" + (argumentLine == "" ? "" : " " + argumentLine);
            ProcessStartInfo info = new ProcessStartInfo(path, argumentLine);
            info.UseShellExecute = false;
            info.CreateNoWindow = true;
            info.RedirectStandardInput = true;
            info.RedirectStandardOutput = true;
            info.RedirectStandardError = true;
            // not the OEM code page: installers that print UTF-8 keep their non-ASCII lines
            info.StandardOutputEncoding = new UTF8Encoding(false);
            info.StandardErrorEncoding = new UTF8Encoding(false);
            if (workingDirectory != "")
            {
                info.WorkingDirectory = workingDirectory;
            }
            Stopwatch watch = Stopwatch.StartNew();
            Process process;
            try
            {
                process = Process.Start(info);
            }
            catch (Win32Exception error)
            {
                if (error.NativeErrorCode == 2 || error.NativeErrorCode == 3)
                {
                    throw new OpException("NotFound", "cannot start " + path + ": " + error.Message);
                }
                throw;
            }
            using (process)
            {
                // no input: a process that asks a question reads end-of-file instead of hanging
                process.StandardInput.Close();
                TailReader stdout = new TailReader(process.StandardOutput, tailLines);
                TailReader stderr = new TailReader(process.StandardError, tailLines);
                bool timedOut = false;
                if (!process.WaitForExit((int)Math.Min(timeoutS * 1000, int.MaxValue)))
                {
                    timedOut = true;
                    Core.Windows.KillProcessTree(process);
                    process.WaitForExit(30000);
                }
                // a grandchild that inherited the pipes may keep them open: do not wait forever
                stdout.Wait(10000);
                stderr.Wait(10000);
                Dictionary<string, object> result = new Dictionary<string, object>();
                result["exit_code"] = process.HasExited ? (object)process.ExitCode : null;
                result["timed_out"] = timedOut;
                result["duration_s"] = Math.Round(watch.Elapsed.TotalSeconds, 3);
                result["stdout_tail"] = stdout.Tail();
                result["stderr_tail"] = stderr.Tail();
                result["command_line"] = commandLine;
                if (logPath != "" && !timedOut)
                {
                    result["log_tail"] = LogTail(logPath, LogTailLines);
                }
                return result;
            }
        }
    }
}
