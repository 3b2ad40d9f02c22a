// download run_as: system: the copy runs as the machine account in a one-shot scheduled task
// (the double-hop fix DSC's LCM had by running as SYSTEM). docs/ops.md "download".
//
// The task runs a worker compiled from this very core and its modules (CodeDom, the csc that
// Add-Type uses), so the copy is Download.Fetch, the code the session runs and the tests execute. What the
// task gets is data only: request.json in a directory whose ACL grants SYSTEM and
// Administrators alone; the task's command line is the worker's path and nothing else.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Threading;
using System.Web.Script.Serialization;

namespace Pushinstall.Agent
{
    public static class SystemTask
    {
        public const string RequestFile = "request.json";
        public const string ResultFile = "result.json";
        public const string WorkerFile = "pushinstall-task.exe";
        private const int Ready = 3;
        private const int HasNotRun = 0x41303;
        private const int StillRunning = 0x41301;

        /// <summary>The worker's Main; the rest of the worker is this core.</summary>
        private const string WorkerMain =
            "namespace Pushinstall.AgentTask { public static class Program { public static int Main() {"
            + " return Pushinstall.Agent.SystemTask.Work(System.AppDomain.CurrentDomain.BaseDirectory); } } }";

        /// <summary>Copies `source` to `temp` as SYSTEM; the copy's sha256. The task and its
        /// directory (the data file with the credential in it) are gone when this returns or
        /// throws, a timeout included.</summary>
        public static string Copy(string source, string temp, Dictionary<string, object> credential, long timeoutS)
        {
            string name = "pushinstall-download-" + Guid.NewGuid().ToString("N");
            string directory = Path.Combine(Core.Windows.TaskRoot(), name);
            Core.Windows.CreateProtectedDirectory(directory);
            bool registered = false;
            try
            {
                Dictionary<string, object> request = new Dictionary<string, object>();
                request["source"] = source;
                request["temp"] = temp;
                request["credential"] = credential;
                request["timeout_s"] = timeoutS;
                File.WriteAllText(Path.Combine(directory, RequestFile), Json.Write(request), new UTF8Encoding(false));
                string worker = CompileWorker(directory);
                Core.Windows.RegisterSystemTask(name, worker, directory, timeoutS + 60);
                registered = true;
                Core.Windows.RunTask(name);
                Wait(name, directory, source, timeoutS);
                return ReadResult(directory, source);
            }
            finally
            {
                if (registered)
                {
                    try
                    {
                        Core.Windows.DeleteTask(name);
                    }
                    catch (Exception)
                    {
                        // the answer says what failed; a leftover task is named pushinstall-download-*
                    }
                }
                RemoveDirectory(directory);
            }
        }

        private static void Wait(string name, string directory, string source, long timeoutS)
        {
            string result = Path.Combine(directory, ResultFile);
            Stopwatch clock = Stopwatch.StartNew();
            while (!File.Exists(result))
            {
                ScheduledTaskStatus status = Core.Windows.GetTaskStatus(name);
                if (status.State == Ready && status.LastResult != HasNotRun && status.LastResult != StillRunning)
                {
                    if (File.Exists(result))
                    {
                        return;
                    }
                    throw new OpException("DownloadFailed", "the SYSTEM task copying " + source
                                          + " ended with code 0x" + status.LastResult.ToString("x")
                                          + " and no result");
                }
                if (clock.Elapsed.TotalSeconds > timeoutS)
                {
                    Core.Windows.StopTask(name);
                    throw new OpException("Timeout", "the SYSTEM task copying " + source
                                          + " did not finish within " + timeoutS + " s");
                }
                Thread.Sleep(Core.Windows.TaskPollMilliseconds);
            }
        }

        private static string ReadResult(string directory, string source)
        {
            JavaScriptSerializer serializer = new JavaScriptSerializer();
            Dictionary<string, object> answer = serializer.DeserializeObject(
                File.ReadAllText(Path.Combine(directory, ResultFile), Encoding.UTF8)) as Dictionary<string, object>;
            if (answer != null && answer.ContainsKey("ok") && true.Equals(answer["ok"]))
            {
                return (string)answer["result"];
            }
            Dictionary<string, object> error = answer == null ? null : answer["error"] as Dictionary<string, object>;
            if (error == null)
            {
                throw new OpException("DownloadFailed", "the SYSTEM task copying " + source + " wrote no answer");
            }
            string type = (string)error["type"];
            string message = (string)error["message"];
            if (type == "AccessDenied")
            {
                // the machine account is who the share refused: say so, the admin grants HOST$
                message = message + " (as " + Environment.MachineName + "$)";
            }
            throw new OpException(type, message);
        }

        /// <summary>The worker: this core and its modules with a Main, compiled into the task's
        /// directory.</summary>
        private static string CompileWorker(string directory)
        {
            if (string.IsNullOrEmpty(Core.Source))
            {
                throw new OpException("Exception", "run_as system needs the agent's source (Core.Source is not set)");
            }
            List<string> sources = new List<string>();
            sources.Add(Core.Source);
            sources.AddRange(Modules.Sources);
            sources.Add(WorkerMain);
            string worker = Path.Combine(directory, WorkerFile);
            Modules.Compile(worker, "Pushinstall.AgentTask.Program", new string[0], sources.ToArray());
            return worker;
        }

        private static void RemoveDirectory(string directory)
        {
            try
            {
                string request = Path.Combine(directory, RequestFile);
                if (File.Exists(request))
                {
                    // it held the share password: overwrite before the delete
                    File.WriteAllBytes(request, new byte[new FileInfo(request).Length]);
                }
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, true);
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        /// <summary>Inside the task (as SYSTEM): request.json in, result.json out, written
        /// under another name and moved, so the session never reads half of it.</summary>
        public static int Work(string directory)
        {
            Dictionary<string, object> answer;
            try
            {
                JavaScriptSerializer serializer = new JavaScriptSerializer();
                Args args = new Args((Dictionary<string, object>)serializer.DeserializeObject(
                    File.ReadAllText(Path.Combine(directory, RequestFile), Encoding.UTF8)));
                string temp = args.Str("temp");
                Download.Fetch(args.Str("source"), temp, args.Dict("credential"), args.Long("timeout_s"));
                answer = new Dictionary<string, object>();
                answer["ok"] = true;
                answer["result"] = Files.Sha256(temp);
            }
            catch (Exception error)
            {
                answer = Core.ErrorAnswer(error);
            }
            string partial = Path.Combine(directory, ResultFile + ".part");
            File.WriteAllText(partial, Json.Write(answer), new UTF8Encoding(false));
            File.Move(partial, Path.Combine(directory, ResultFile));
            return true.Equals(answer["ok"]) ? 0 : 1;
        }
    }
}
