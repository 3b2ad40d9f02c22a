// The agent's core: request decoding, dispatch, batch, errors, answer encoding (docs/ops.md).
// C# 5 for csc on .NET 4.5 (Windows PowerShell 3.0 Add-Type) and mcs -langversion:5 in CI.
using System;
using System.Collections;
using System.Collections.Generic;
using System.ComponentModel;
using System.IO;
using System.Runtime.InteropServices;
using System.Security;
using System.Text;
using System.Web.Script.Serialization;

namespace Pushinstall.Agent
{
    /// <summary>An op failure whose answer has this error type.</summary>
    public class OpException : Exception
    {
        public readonly string Type;

        public OpException(string type, string message) : base(message)
        {
            Type = type;
        }
    }

    /// <summary>One op: its arguments in, its result out (or an OpException).</summary>
    public delegate object OpHandler(Args args);

    /// <summary>Runs the `script` op's PowerShell: the shim supplies it.</summary>
    public delegate object ScriptRunner(string source, Dictionary<string, object> parameters);

    /// <summary>Entry point: one encoded request in, one answer line out.</summary>
    public static class Core
    {
        public const string Sentinel = "PUSHINSTALL-ANSWER:";

        /// <summary>The Windows calls (service control, ACL, shares, shutdown): a seam.</summary>
        public static WindowsApi Windows = new WindowsApi();

        /// <summary>The `script` op; null where there is no PowerShell.</summary>
        public static ScriptRunner Script;

        /// <summary>This core's C# source as Add-Type compiled it (the shim sets it): modules are
        /// built against its cached DLL, and the SYSTEM task of download run_as: system runs a
        /// worker compiled from it.</summary>
        public static string Source;

        /// <summary>$PSVersionTable.PSVersion as the shim reads it.</summary>
        public static string PowerShellVersion = "";

        private static readonly Dictionary<string, OpHandler> Ops = new Dictionary<string, OpHandler>
        {
            { "batch", Batch },
            { "facts", Facts.Gather },
            { "ensure_directory", Files.EnsureDirectory },
            { "download", Modules.Missing },
            { "file_begin", Files.Begin },
            { "file_chunk", Files.Chunk },
            { "file_end", Files.End },
            { "expand_archive", Modules.Missing },
            { "run_process", Modules.Missing },
            { "write_secret", Modules.Missing },
            { "remove_file", Files.Remove },
            { "set_service", Modules.Missing },
            { "set_registry", Modules.Missing },
            { "reboot", Modules.Missing },
            { "script", RunScript },
            { "module", Modules.Load },
        };

        /// <summary>A module's op answered from now on by `handler` (Modules.Load).</summary>
        public static void Register(string op, OpHandler handler)
        {
            Ops[op] = handler;
        }

        /// <summary>The op names this core answers (tests compare them with ops.OP_NAMES).</summary>
        public static string[] OpNames()
        {
            return new List<string>(Ops.Keys).ToArray();
        }

        /// <summary>The answer line for a base64 request; never throws.</summary>
        public static string Invoke(string encoded)
        {
            Dictionary<string, object> answer;
            try
            {
                answer = Handle(Decode(encoded));
            }
            catch (Exception error)
            {
                answer = ErrorAnswer(error);
            }
            return AnswerLine(answer);
        }

        /// <summary>The push stream (receiver.ps1, docs/ops.md): one line holding a base64
        /// file_chunk request with `length`, then that many bytes, written at `offset` of the
        /// temporary file. Returns the answer line; never throws.</summary>
        public static string Receive(Stream input)
        {
            Dictionary<string, object> answer;
            try
            {
                Dictionary<string, object> request = Decode(ReadLine(input, 256 * 1024)) as Dictionary<string, object>;
                object args = request != null && request.ContainsKey("args") ? request["args"] : null;
                if (request == null || !"file_chunk".Equals(request["op"]) || !(args is Dictionary<string, object>))
                {
                    throw new OpException("InvalidArgument", "the push stream carries one file_chunk request");
                }
                answer = new Dictionary<string, object>();
                answer["ok"] = true;
                answer["result"] = Files.ChunkFrom(new Args((Dictionary<string, object>)args), input);
            }
            catch (Exception error)
            {
                answer = ErrorAnswer(error);
            }
            return AnswerLine(answer);
        }

        /// <summary>The bytes up to the first newline, as ASCII; at most `limit` of them.</summary>
        private static string ReadLine(Stream input, int limit)
        {
            MemoryStream line = new MemoryStream();
            while (true)
            {
                int next = input.ReadByte();
                if (next == '\n')
                {
                    return Encoding.ASCII.GetString(line.ToArray());
                }
                if (next < 0 || line.Length >= limit)
                {
                    throw new OpException("InvalidArgument", "the push stream has no request line");
                }
                line.WriteByte((byte)next);
            }
        }

        private static string AnswerLine(Dictionary<string, object> answer)
        {
            string json;
            try
            {
                json = Json.Write(answer);
            }
            catch (Exception error)
            {
                json = Json.Write(ErrorAnswer(error));
            }
            return Sentinel + Convert.ToBase64String(Encoding.UTF8.GetBytes(json));
        }

        /// <summary>The request a base64 UTF-8 JSON text holds; secret fields decrypted.</summary>
        public static object Decode(string encoded)
        {
            string text;
            try
            {
                text = new UTF8Encoding(false, true).GetString(Unpack(Convert.FromBase64String(encoded.Trim())));
            }
            catch (FormatException)
            {
                throw new OpException("InvalidArgument", "the request is not base64 of UTF-8 JSON");
            }
            catch (ArgumentException)
            {
                throw new OpException("InvalidArgument", "the request is not base64 of UTF-8 JSON");
            }
            JavaScriptSerializer serializer = new JavaScriptSerializer();
            serializer.MaxJsonLength = int.MaxValue;
            serializer.RecursionLimit = 64;
            try
            {
                return Sealed.Open(serializer.DeserializeObject(text));
            }
            catch (ArgumentException error)
            {
                throw new OpException("InvalidArgument", "the request is not JSON: " + error.Message);
            }
            catch (InvalidOperationException error)
            {
                throw new OpException("InvalidArgument", "the request is not JSON: " + error.Message);
            }
        }

        /// <summary>A packed request's JSON (gzip: 1f 8b, which JSON never starts with), else
        /// the bytes as they are.</summary>
        public static byte[] Unpack(byte[] data)
        {
            if (data.Length < 2 || data[0] != 0x1f || data[1] != 0x8b)
            {
                return data;
            }
            try
            {
                using (MemoryStream expanded = new MemoryStream())
                {
                    using (System.IO.Compression.GZipStream zip = new System.IO.Compression.GZipStream(new MemoryStream(data), System.IO.Compression.CompressionMode.Decompress))
                    {
                        zip.CopyTo(expanded);
                    }
                    return expanded.ToArray();
                }
            }
            catch (InvalidDataException)
            {
                throw new OpException("InvalidArgument", "the packed request is not gzip");
            }
            catch (IOException)
            {
                throw new OpException("InvalidArgument", "the packed request is not gzip");
            }
        }

        /// <summary>The answer for one decoded request; every failure becomes an error answer.</summary>
        public static Dictionary<string, object> Handle(object request)
        {
            try
            {
                Dictionary<string, object> req = request as Dictionary<string, object>;
                if (req == null || !req.ContainsKey("op") || !(req["op"] is string))
                {
                    throw new OpException("InvalidArgument", "a request is a JSON object with a string \"op\"");
                }
                string op = (string)req["op"];
                OpHandler handler;
                if (!Ops.TryGetValue(op, out handler))
                {
                    throw new OpException("UnknownOp", "unknown op '" + op + "'");
                }
                object raw = req.ContainsKey("args") ? req["args"] : null;
                if (raw == null)
                {
                    raw = new Dictionary<string, object>();
                }
                Dictionary<string, object> args = raw as Dictionary<string, object>;
                if (args == null)
                {
                    throw new OpException("InvalidArgument", "\"args\" must be a JSON object");
                }
                Dictionary<string, object> answer = new Dictionary<string, object>();
                answer["ok"] = true;
                answer["result"] = handler(new Args(args));
                return answer;
            }
            catch (Exception error)
            {
                return ErrorAnswer(error);
            }
        }

        private static object Batch(Args args)
        {
            List<object> answers = new List<object>();
            foreach (object one in args.List("requests"))
            {
                answers.Add(Handle(one));
            }
            return answers;
        }

        private static object RunScript(Args args)
        {
            string source = args.Str("source");
            Dictionary<string, object> parameters = args.Dict("parameters");
            if (Script == null)
            {
                throw new OpException("Exception", "the script op needs the PowerShell shim");
            }
            return Script(source, parameters ?? new Dictionary<string, object>());
        }

        /// <summary>The structured error answer: the first exception in the chain with a known
        /// type names it; otherwise type Exception with the innermost message.</summary>
        public static Dictionary<string, object> ErrorAnswer(Exception failure)
        {
            Dictionary<string, object> error = ErrorOf(failure);
            Dictionary<string, object> answer = new Dictionary<string, object>();
            answer["ok"] = false;
            answer["error"] = error;
            return answer;
        }

        /// <summary>`{"type", "message"}` for an exception.</summary>
        public static Dictionary<string, object> ErrorOf(Exception failure)
        {
            string type = "Exception";
            Exception innermost = failure;
            while (innermost.InnerException != null)
            {
                innermost = innermost.InnerException;
            }
            string message = innermost.Message;
            for (Exception current = failure; current != null; current = current.InnerException)
            {
                string known = TypeOf(current);
                if (known != null)
                {
                    type = known;
                    message = current.Message;
                    break;
                }
            }
            Dictionary<string, object> error = new Dictionary<string, object>();
            error["type"] = type;
            error["message"] = message;
            return error;
        }

        private static string TypeOf(Exception error)
        {
            OpException op = error as OpException;
            if (op != null)
            {
                return op.Type;
            }
            if (error is UnauthorizedAccessException || error is SecurityException)
            {
                return "AccessDenied";
            }
            if (error is FileNotFoundException || error is DirectoryNotFoundException)
            {
                return "NotFound";
            }
            if (error is IOException)
            {
                int code = Marshal.GetHRForException(error) & 0xFFFF;
                if (code == 112 || code == 39)
                {
                    return "DiskFull";
                }
                if (code == 53 || code == 67)
                {
                    return "NotFound";
                }
            }
            Win32Exception win32 = error as Win32Exception;
            if (win32 != null)
            {
                if (win32.NativeErrorCode == 2 || win32.NativeErrorCode == 3)
                {
                    return "NotFound";
                }
                if (win32.NativeErrorCode == 5)
                {
                    return "AccessDenied";
                }
            }
            return null;
        }
    }

    /// <summary>An op's or query's arguments, read with their JSON types checked.</summary>
    public class Args
    {
        private readonly Dictionary<string, object> values;

        public Args(Dictionary<string, object> values)
        {
            this.values = values;
        }

        public bool Has(string name)
        {
            return values.ContainsKey(name) && values[name] != null;
        }

        public object Raw(string name)
        {
            if (!Has(name))
            {
                throw Missing(name);
            }
            return values[name];
        }

        public string Str(string name)
        {
            string value = Raw(name) as string;
            if (value == null)
            {
                throw Wrong(name, "a string");
            }
            return value;
        }

        public string Str(string name, string fallback)
        {
            return Has(name) ? Str(name) : fallback;
        }

        public long Long(string name)
        {
            object value = Raw(name);
            if (value is int || value is long)
            {
                return Convert.ToInt64(value);
            }
            if (value is decimal && decimal.Truncate((decimal)value) == (decimal)value
                && (decimal)value <= long.MaxValue && (decimal)value >= long.MinValue)
            {
                return (long)(decimal)value;
            }
            throw Wrong(name, "an integer");
        }

        public long Long(string name, long fallback)
        {
            return Has(name) ? Long(name) : fallback;
        }

        public int Int(string name, int fallback)
        {
            long value = Long(name, fallback);
            if (value > int.MaxValue || value < int.MinValue)
            {
                throw Wrong(name, "a 32-bit integer");
            }
            return (int)value;
        }

        public bool Bool(string name, bool fallback)
        {
            if (!Has(name))
            {
                return fallback;
            }
            if (!(values[name] is bool))
            {
                throw Wrong(name, "a boolean");
            }
            return (bool)values[name];
        }

        /// <summary>A JSON array, as it came: never wrapped in another array.</summary>
        public object[] List(string name)
        {
            object[] value = Raw(name) as object[];
            if (value == null)
            {
                throw Wrong(name, "a list");
            }
            return value;
        }

        public string[] StrList(string name)
        {
            if (!Has(name))
            {
                return new string[0];
            }
            object[] items = List(name);
            string[] strings = new string[items.Length];
            for (int i = 0; i < items.Length; i++)
            {
                strings[i] = items[i] as string;
                if (strings[i] == null)
                {
                    throw Wrong(name, "a list of strings");
                }
            }
            return strings;
        }

        public Dictionary<string, object> Dict(string name)
        {
            if (!Has(name))
            {
                return null;
            }
            Dictionary<string, object> value = values[name] as Dictionary<string, object>;
            if (value == null)
            {
                throw Wrong(name, "an object");
            }
            return value;
        }

        private static OpException Missing(string name)
        {
            return new OpException("InvalidArgument", "missing argument '" + name + "'");
        }

        private static OpException Wrong(string name, string what)
        {
            return new OpException("InvalidArgument", "argument '" + name + "' must be " + what);
        }
    }
}
