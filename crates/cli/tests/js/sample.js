// The guide's "Telephony Integration REST API Sample Code", as printed, with only its
// placeholders filled in (base URL, org id, call center, token lifetime) and one fix: the
// Authorization header is a template literal (the printed single quotes would send the
// text "${jwt}"). Run by crates/cli/tests/it/js_client.rs against a real server.

const jwt = require('jsonwebtoken');
const SSM = require('aws-sdk/clients/ssm');
const uuid = require('uuid/v1');

// SCRT EndPoint Base example: https://MyDomainName.my.salesforce-scr.t.com/telephony/v1
// Contact your admin to get the exact URL. This should have been configured as part
// of the Service Cloud Voice Setup.

const axios = require('axios').create({
  baseURL: process.env.SCRT_ENDPOINT_BASE
});

// Example function to retrieve privateKey parameter using Amazon Systems Manager
async function getSSMParameterValue(paramName, withDecryption) {
  return await new Promise(resolve => {
    const ssm = new SSM();
    const query = {
      Names: [paramName],
      WithDecryption: withDecryption
    };

    ssm.getParameters(query, (err, data) => {
      let paramValue = null;

      if (!err && data && data.Parameters && data.Parameters.length) {
        paramValue = data.Parameters[0].Value;
      }

      resolve(paramValue);
    });
  });
}

// Generate a JWT based on the specified parameters.
async function generateJWT(params) {
  const { privateKeyParamName, orgId, callCenterApiName, expiresIn } = params;
  // Retrieve privateKey from the param store
  const privateKey = await getSSMParameterValue(privateKeyParamName, true);
  const signOptions = {
    issuer: orgId,
    subject: callCenterApiName,
    expiresIn: expiresIn,
    algorithm: 'RS256',
    jwtid: uuid()
  };

  return jwt.sign({}, privateKey, signOptions);
}

// Function to Create VoiceCall
async function createVoiceCall(fieldValues) {
  const generateJWTParams = {
    privateKeyParamName : "YourPrivateKeyParamName",
    orgId : process.env.SALESFORCE_ORG_ID,
    callCenterApiName : "HVCC",
    expiresIn : "5m"
  };

  const jwt = await generateJWT(generateJWTParams);

  var fieldValues = {

    "vendorCallKey": "5324881f-1e84-4367-8930-f69a74b30ca6",
    "callCenterApiName": "HVCC",
    "to": "8002345678",
    "from": "4081456688",
    "initiationMethod": "Inbound",
    "startTime": "2020-07-13T11:43:01Z",
    "participants":
      [{"participantKey": "+18033568299",
        "type": "END_USER"}]
  };

  const response = await axios.post('/voiceCalls', fieldValues, {
    headers: {
      'Authorization': `Bearer ${jwt}`,
      'Content-Type': 'application/json',
      'Telephony-Provider-Name': 'Amazon Connect'
    }
  })
  .then(response => {
    return response;
  })
  .catch(error => {
    let context = {};
    if (error.response) {
      // The request was made and the server responded with
      // a status code that falls out of the range of 2xx
      context = error.response.data;
    } else if (error.request) {
      // The request was made but no response was received
      context = error.request;
    } else {
      // Something happened in setting up the request that triggered an error
      context = error.message;
    }
    throw new Error('Error creating VoiceCall record');
  });

  return response.data;
}

// --- Voxbridge test runner (not part of the guide's sample) ---
createVoiceCall()
  .then(data => { console.log(JSON.stringify(data)); })
  .catch(err => { console.error(err.message); process.exit(1); });
