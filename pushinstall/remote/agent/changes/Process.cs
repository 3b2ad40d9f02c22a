// run_process (docs/ops.md): the argument list quoted by ProcessOp.Join, output tails, timeout.
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Diagnostics;
using System.IO;
using System.Text;

namespace Pushinstall.Agent
{
    public static class ProcessRun
    {
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
            string argumentLine = ProcessOp.Join(arguments);
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
