// The Windows argv rules (run_process in changes/Process.cs quotes its argument LIST with them, as
// RunTool does) and the tail reader of a process's output.
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
    }
}
